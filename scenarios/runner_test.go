package scenarios

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/faults"
)

// ExampleCase_Plan shows a case's subtest name and the fault plan it arms.
func ExampleCase_Plan() {
	c := Case{Backend: Postgres, Operation: "UpdateThread", Step: 7, StepKind: faults.StepCommit,
		Fault: faults.Fault{Kind: faults.KindPgErr, Code: "40001"}}
	fmt.Println(c.Name())
	fmt.Println(c.Plan())
	fmt.Println(c)
	// Output:
	// UpdateThread/step-7-commit/pgerr=40001
	// step=7:pgerr=40001
	// postgres/UpdateThread/step-7-commit/pgerr=40001
}

// TestCaseNames checks that cases print their typed step kind and fault as
// the plan language writes them, and the clean case as "clean".
func TestCaseNames(t *testing.T) {
	tests := []struct {
		name               string
		c                  Case
		wantName, wantStr  string
		wantStep, wantPlan string
	}{
		{"faulted", Case{Backend: Postgres, Operation: "UpdateThread", Step: 7, StepKind: faults.StepCommit,
			Fault: faults.Fault{Kind: faults.KindPgErr, Code: "40001"}},
			"UpdateThread/step-7-commit/pgerr=40001", "postgres/UpdateThread/step-7-commit/pgerr=40001", "commit", "step=7:pgerr=40001"},
		{"clean", Case{Backend: Sqlmock, Operation: "ListThreads", StepKind: StepClean},
			"ListThreads/step-0-clean/clean", "sqlmock/ListThreads/step-0-clean/clean", "clean", "step=0:clean"},
		{"latency-at-connect", Case{Backend: Sqlmock, Operation: "UpdateThread", Step: 1, StepKind: faults.StepConnect,
			Fault: faults.Fault{Kind: faults.KindLatency, Delay: faults.DefaultLatency}},
			"UpdateThread/step-1-connect/latency=20ms", "sqlmock/UpdateThread/step-1-connect/latency=20ms", "connect", "step=1:latency=20ms"},
		{"rows-close", Case{Backend: Postgres, Operation: "GetMessages", Step: 9, StepKind: faults.StepRowsClose,
			Fault: faults.Fault{Kind: faults.KindError}},
			"GetMessages/step-9-rows-close/error", "postgres/GetMessages/step-9-rows-close/error", "rows-close", "step=9:error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Name(); got != tt.wantName {
				t.Errorf("Name: got %q; want %q", got, tt.wantName)
			}
			if got := tt.c.String(); got != tt.wantStr {
				t.Errorf("String: got %q; want %q", got, tt.wantStr)
			}
			if got := tt.c.StepName(); got != tt.wantStep {
				t.Errorf("StepName: got %q; want %q", got, tt.wantStep)
			}
			if got := tt.c.Plan(); got != tt.wantPlan {
				t.Errorf("Plan: got %q; want %q", got, tt.wantPlan)
			}
			if !tt.c.Clean() {
				if _, err := faults.ParsePlan(tt.c.Plan()); err != nil {
					t.Errorf("ParsePlan(%q): %v", tt.c.Plan(), err)
				}
			}
		})
	}
}

// TestExpectFor checks the model the sqlmock expectations follow, on a
// trace of two units (read, then write) like AutoRename's.
func TestExpectFor(t *testing.T) {
	e := []gstep{{Kind: "begin"}, {Kind: "query", SQL: "read"}, {Kind: "commit"},
		{Kind: "begin"}, {Kind: "exec", SQL: "write"}, {Kind: "commit"}}
	kinds := func(steps []gstep) string {
		var out []string
		for _, s := range steps {
			out = append(out, s.Kind+s.SQL)
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name     string
		k        int
		kind     string
		out      outcome
		rollback bool
		want     string
	}{
		{"absorbed-runs-everything", 0, "begin", outAbsorbed, true, "begin queryread commit begin execwrite commit"},
		{"begin-fails-nothing-more", 0, "begin", outSurfaces, true, ""},
		{"query-fails-rollback", 1, "query", outSurfaces, true, "begin rollback"},
		{"query-fails-dead-conn-no-rollback", 1, "query", outSurfaces, false, "begin"},
		{"commit-fails-no-rollback", 2, "commit", outSurfaces, true, "begin queryread"},
		{"second-unit-exec-fails", 4, "exec", outSurfaces, true, "begin queryread commit begin rollback"},
		{"retried-query-reruns-unit-and-rest", 1, "query", outRetried, true, "begin rollback begin queryread commit begin execwrite commit"},
		{"retried-commit-reruns-unit", 5, "commit", outRetried, true, "begin queryread commit begin execwrite begin execwrite commit"},
		{"next-fails-rollback", 2, "next", outSurfaces, true, "begin queryread rollback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kinds(expectFor(e, tt.k, tt.kind, false, tt.out, tt.rollback)); got != tt.want {
				t.Errorf("expectFor: got %q; want %q", got, tt.want)
			}
		})
	}
}

// TestGoTestCommand checks the replay command anchors what must be exact,
// and names the package the test runs in (from the module root).
func TestGoTestCommand(t *testing.T) {
	tests := []struct{ name, test, want string }{
		{"case", "TestMatrix/postgres/UpdateThread/step-7-commit/pgerr=40001",
			"go test ./scenarios -run '^TestMatrix$/postgres/UpdateThread/step-7-commit/^pgerr=40001$'"},
		{"top-level", "TestGolden", "go test ./scenarios -run '^TestGolden$'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := goTestCommand(tt.test); got != tt.want {
				t.Errorf("got %s; want %s", got, tt.want)
			}
		})
	}
}

// TestParseGoldenErrors shows the parser rejecting what it cannot read, with
// the line it stopped at.
func TestParseGoldenErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"step-out-of-order", "step 2 begin\n", "line 1: want step 1"},
		{"unknown-key", "step 1 query\n  rows: 1\n", `line 2: unknown key "rows"`},
		{"bad-value", "step 1 query\n  columns: a\n  row: int:x\n", "line 3"},
		{"row-width", "step 1 query\n  columns: a b\n  row: int:1\n", "1 values for 2 columns"},
		{"before-step", "  sql: SELECT 1\n", "before the first step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseGolden(tt.text)
			if err == nil || !errors.Is(err, ErrGolden) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseGolden: got %v; want an ErrGolden naming %q", err, tt.want)
			}
		})
	}
}

// TestGoldenMissing shows what a sqlmock run without its golden trace says:
// which file is missing in which file system, and how to record it.
func TestGoldenMissing(t *testing.T) {
	op := Operation{
		Name:  "MyOperation",
		Setup: func(context.Context, *sql.DB) (Fixture, error) { return nil, nil },
		Run:   func(ctx context.Context, db *sql.DB, _ Fixture) error { return db.PingContext(ctx) },
	}
	tests := []struct {
		name   string
		golden fs.FS
		is     error
		want   []string
	}{
		{"nil", nil, ErrConfig, []string{"sqlmock needs Golden", "MyOperation.trace", "RecordGolden"}},
		{"map", fstest.MapFS{}, ErrGolden, []string{"MyOperation.trace", "fstest.MapFS", "RecordGolden", "GoldenTests", "-update"}},
		{"dir", os.DirFS("no-such-dir"), ErrGolden, []string{"MyOperation.trace", `"no-such-dir"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRunner(t.Context(), Config{Backend: Sqlmock, Golden: tt.golden}, op)
			if !errors.Is(err, tt.is) {
				t.Fatalf("NewRunner: got %v; want an error wrapping %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewRunner: got %q; want it to name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "./scenarios") || strings.Contains(err.Error(), "thread") {
				t.Errorf("NewRunner: got %q; want no reference to this repository's own tests", err)
			}
		})
	}
}

// TestPackageDirOf checks that a replay command names the package of the
// module it runs in: a user's package in the user's module, not this one.
func TestPackageDirOf(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/shop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(root, "internal", "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dir, want string }{
		{"user-package", store, "./internal/store"},
		{"module-root", root, "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := packageDirOf(tt.dir); got != tt.want {
				t.Errorf("packageDirOf(%s): got %q; want %q", tt.dir, got, tt.want)
			}
		})
	}
}

// TestPhasesSplitTheDuration: every case's Phases and RunTime are measured
// and add up to no more than its Duration — on sqlmock, and on PostgreSQL for
// database/sql (with the session check) and for pgx.
func TestPhasesSplitTheDuration(t *testing.T) {
	bumpPgx := readThenBump
	bumpPgx.Name, bumpPgx.Run = "BumpPgx", nil
	bumpPgx.RunPgx = func(ctx context.Context, pool *pgxpool.Pool, fx Fixture) error {
		_, err := pool.Exec(ctx, bumpSQL, fx)
		return err
	}
	tests := []struct {
		name    string
		cfg     func(t *testing.T) Config
		op      Operation
		session bool // the session check runs
	}{
		{"sqlmock", verdictBackends[0].cfg, readThenBump, false},
		{"postgres", verdictBackends[1].cfg, readThenBump, true},
		{"pgx", verdictBackends[1].cfg, bumpPgx, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Run(t.Context(), tt.cfg(t), tt.op)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Results) < 2 {
				t.Fatalf("%d cases; want the clean case and faulted ones", len(rep.Results))
			}
			for _, res := range rep.Results {
				p := res.Phases
				if res.Failed() {
					t.Fatalf("%s failed on correct code: %v", res.Case.Name(), res.Findings[0].Error())
				}
				if p.Setup <= 0 || p.Connect <= 0 || res.RunTime <= 0 || p.Checks <= 0 || (p.Session > 0) != tt.session {
					t.Errorf("%s: phases %+v, run %s; want setup, connect, run and checks measured, and the session check %v", res.Case.Name(), p, res.RunTime, tt.session)
				}
				if sum := p.Setup + p.Connect + res.RunTime + p.Checks + p.Session; sum > res.Duration {
					t.Errorf("%s: phases and run add up to %s, more than the case's %s", res.Case.Name(), sum, res.Duration)
				}
			}
		})
	}
}
