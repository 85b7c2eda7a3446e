package scenarios

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden traces in testdata from a clean run on PostgreSQL")

// goldenSteps converts a recorded trace to golden steps, normalised.
func goldenSteps(tr faults.Trace) []gstep {
	out := make([]gstep, len(tr))
	for i, s := range tr {
		out[i] = gstep{Kind: s.Kind.String(), SQL: s.SQL, Args: s.Args, RowsAffected: s.RowsAffected}
		if s.Kind == faults.StepQuery {
			out[i].Columns = s.Columns
			out[i].Rows = s.Rows
		}
	}
	return newNormaliser().steps(out)
}

// TestGolden records each catalog operation on PostgreSQL and compares its
// trace with testdata/<operation>.trace: a changed query, a new step or
// different result data fails here with a diff. Refresh with -update.
func TestGolden(t *testing.T) {
	db := pgtest.New(t, pgtest.WithMigration("handlers", handlers.Migrate))
	for _, op := range Catalog() {
		t.Run(op.Name, func(t *testing.T) {
			r, err := NewRunner(t.Context(), Config{Backend: Postgres, DSN: db.DSN, DB: db.DB}, op)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			got := formatGolden(op.Name, goldenSteps(r.clean))
			path := filepath.Join("testdata", op.Name+".trace")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden trace: %v (record it: go test ./scenarios -run TestGolden -update)", err)
			}
			if string(want) != got {
				t.Errorf("%s: the recorded trace differs from the golden file (-want +got):\n%s\nIf the change is intended: go test ./scenarios -run TestGolden -update",
					path, diffLines(string(want), got))
			}
			if _, err := parseGolden(got); err != nil {
				t.Errorf("the golden text does not parse back: %v", err)
			}
		})
	}
}
