package scenarios

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// TestGoldenRoundTrip reads every golden trace and writes it back
// byte for byte: the sqlmock matrix sees exactly what the file says.
func TestGoldenRoundTrip(t *testing.T) {
	for _, op := range Catalog() {
		t.Run(op.Name, func(t *testing.T) {
			b, err := fs.ReadFile(GoldenFS(), op.Name+".trace")
			if err != nil {
				t.Fatal(err)
			}
			steps, err := parseGolden(string(b))
			if err != nil {
				t.Fatal(err)
			}
			if got := formatGolden(op.Name, steps); got != string(b) {
				t.Errorf("round trip changed the trace (-want +got):\n%s", diffLines(string(b), got))
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
