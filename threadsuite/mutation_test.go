package threadsuite

import (
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/internal/mutant"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// TestMutationProof plants every session bug of internal/mutant, one at a
// time, runs the checks that target it on sqlmock and on real Postgres, logs
// the kill table and fails if any bug survives — or if a check expected to
// catch a bug on a backend did not.
func TestMutationProof(t *testing.T) {
	if len(mutant.All()) < 12 {
		t.Fatalf("internal/mutant plants %d bugs; want at least 12", len(mutant.All()))
	}
	db := pgtest.New(t, pgtest.WithMigration("handlers", handlers.Migrate))
	seed := probeSeed(t)
	table, err := MutationProof(t.Context(), MutationConfig{
		DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName,
		Seed: seed, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kill table:\n%s", table)
	if len(table.Kills) != 2*len(mutant.All()) {
		t.Errorf("kill table has %d cells; want %d (every bug on both backends)", len(table.Kills), 2*len(mutant.All()))
	}
	for _, k := range table.Survivors() {
		t.Errorf("mutant %s survived on %s: %s (%s)", k.Bug, k.Backend, k.Verdict, k.Detail)
	}
	for _, k := range table.Missed() {
		t.Errorf("mutant %s on %s: the checks meant to catch it there did not: %s (%s)", k.Bug, k.Backend, k.Verdict, k.Detail)
	}
}

// TestKillTable shows the table's verdict logic failing on planted results: a
// bug killed on no backend is a survivor, a broken check is too, and the
// printed table names the survivor.
func TestKillTable(t *testing.T) {
	survived := Kill{Verdict: Survived, Detail: "every check passed with the bug planted"}
	tests := []struct {
		name              string
		bug               mutant.Bug
		sqlmock, postgres Kill // the bug's cell on each backend; a zero Kill: no cell
		survivors         int
		missed            int
		want              string
	}{
		{
			name:     "all-killed",
			bug:      mutant.RowsNotClosed,
			sqlmock:  Kill{Verdict: Killed, Check: "matrix/pool", Where: "GetMessages/step-2-begin/latency=1ms"},
			postgres: Kill{Verdict: Killed, Check: "matrix/error-surfaced", Where: "GetMessages/step-2-begin/latency=1ms"},
			want:     "1 of 1 planted bugs killed",
		},
		{
			name:     "killed-on-one-backend",
			bug:      mutant.MetadataReadModifyWrite,
			sqlmock:  Kill{Verdict: NotApplicable, Detail: "no check of this backend applies"},
			postgres: Kill{Verdict: Killed, Check: "probe/lost-update:lost-update", Where: "lost-update seed=1"},
			want:     "probe/lost-update:lost-update",
		},
		{
			name:      "survivor",
			bug:       mutant.ContextNotPassed,
			sqlmock:   survived,
			postgres:  survived,
			survivors: 2, missed: 2,
			want: "0 of 1 planted bugs killed; 2 cell(s) survived",
		},
		{
			name:      "missed-on-one-backend",
			bug:       mutant.CommitErrorIgnored,
			sqlmock:   survived,
			postgres:  Kill{Verdict: Killed, Check: "matrix/error-surfaced"},
			survivors: 0, missed: 1,
			want: "CommitErrorIgnored  sqlmock   SURVIVED",
		},
		{
			name:      "broken-check",
			bug:       mutant.ConnNeverClosed,
			postgres:  Kill{Verdict: Broken, Detail: "matrix UpdateThread on postgres: setup failed"},
			survivors: 1, missed: 1,
			want: "ERROR",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kt KillTable
			for i, k := range []Kill{tt.sqlmock, tt.postgres} {
				if k != (Kill{}) {
					k.Bug, k.Backend = Bug(tt.bug.String()), []faults.Backend{scenarios.Sqlmock, scenarios.Postgres}[i]
					kt.Kills = append(kt.Kills, k)
				}
			}
			if got := len(kt.Survivors()); got != tt.survivors {
				t.Errorf("Survivors: got %d; want %d", got, tt.survivors)
			}
			if got := len(kt.Missed()); got != tt.missed {
				t.Errorf("Missed: got %d; want %d", got, tt.missed)
			}
			if s := kt.String(); !strings.Contains(s, tt.want) {
				t.Errorf("String() = \n%s\nwant it to contain %q", s, tt.want)
			}
		})
	}
}

// TestMutationCatalogCoversEveryBug: every planted bug has a check on at
// least one backend, and the real-Postgres backend has one for each.
func TestMutationCatalogCoversEveryBug(t *testing.T) {
	for _, bug := range mutant.All() {
		t.Run(bug.String(), func(t *testing.T) {
			entry, ok := mutationCatalog[bug]
			if !ok || len(entry.killers) == 0 {
				t.Fatalf("no check registered for %s", bug)
			}
			pg := false
			for _, k := range entry.killers {
				pg = pg || k.on(scenarios.Postgres)
				if k.probe != "" {
					if _, ok := LookupProbe(k.probe); !ok {
						t.Errorf("check of %s names probe %q, which does not exist", bug, k.probe)
					}
				}
			}
			if !pg {
				t.Errorf("no real-Postgres check for %s", bug)
			}
		})
	}
}
