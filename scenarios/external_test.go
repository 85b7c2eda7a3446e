package scenarios

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden traces in testdata from a clean run on PostgreSQL")

// keySeq makes the fixtures of the external operations distinct.
var keySeq atomic.Int64

// externalOp is a tiny operation: one row written in one transaction, and a
// call to something outside the database; across(n) says whether its n-th
// run (from 1) makes the call inside the transaction, before the commit,
// rather than after it.
func externalOp(name string, across func(n int64) bool) Operation {
	var runs atomic.Int64
	notify := func(context.Context) error { return nil }
	return Operation{
		Name: name,
		Setup: func(ctx context.Context, db *sql.DB) (Fixture, error) {
			if db == nil {
				return "mock", nil
			}
			if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS external_calls (k text PRIMARY KEY)`); err != nil {
				return nil, fmt.Errorf("setup external_calls: %w", err)
			}
			return fmt.Sprintf("k-%d", keySeq.Add(1)), nil
		},
		Run: func(ctx context.Context, db *sql.DB, fx Fixture) error {
			held := across(runs.Add(1))
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO external_calls (k) VALUES ($1)`, fx); err != nil {
				_ = tx.Rollback()
				return err
			}
			if held {
				if err := External(ctx, "notify", notify); err != nil {
					_ = tx.Rollback()
					return err
				}
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			if !held {
				return External(ctx, "notify", notify)
			}
			return nil
		},
		State: func(ctx context.Context, db *sql.DB, fx Fixture) (string, error) {
			var n int
			err := db.QueryRowContext(ctx, `SELECT count(*) FROM external_calls WHERE k = $1`, fx).Scan(&n)
			return fmt.Sprint(n), err
		},
	}
}

// The external operations: the call inside the transaction on every run,
// after the commit on every run, and inside it only on the runner's clean
// recordings (so a finding recorded then must not be blamed on a case).
func heldAcross() Operation { return externalOp("ExternalInTx", func(int64) bool { return true }) }
func afterCommit() Operation {
	return externalOp("ExternalAfterCommit", func(int64) bool { return false })
}
func heldWhileRecorded() Operation {
	return externalOp("ExternalInTxWhileRecorded", func(n int64) bool { return n <= 2 })
}

// pgConfig returns a Postgres matrix configuration on a fresh database.
func pgConfig(t testing.TB) Config {
	t.Helper()
	db := pgtest.New(t)
	return Config{Backend: Postgres, DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName}
}

// TestGolden records the test operations on PostgreSQL and compares their
// traces with testdata/<operation>.trace. Refresh with -update.
func TestGolden(t *testing.T) {
	db := pgtest.New(t)
	GoldenTests(t, "testdata", *update, Config{DSN: db.DSN, DB: db.DB}, heldAcross(), afterCommit(), heldWhileRecorded())
}

// TestGoldenRoundTrip reads every golden trace of testdata and writes it
// back byte for byte: the sqlmock matrix sees exactly what the file says.
func TestGoldenRoundTrip(t *testing.T) {
	names, err := fs.Glob(os.DirFS("testdata"), "*.trace")
	if err != nil || len(names) == 0 {
		t.Fatalf("no golden traces in testdata (%v)", err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			steps, err := parseGolden(string(b))
			if err != nil {
				t.Fatal(err)
			}
			_, refresh, _ := strings.Cut(string(b), "# Refresh: ")
			refresh, _, _ = strings.Cut(refresh, "\n")
			if got := formatGolden(strings.TrimSuffix(name, ".trace"), steps, refresh); got != string(b) {
				t.Errorf("round trip changed the trace (-want +got):\n%s", diffLines(string(b), got))
			}
		})
	}
}

// TestGoldenCalls reads the calls the sqlmock matrix expects from a golden trace: the
// driver's own steps (reset, next, rows-close) are left out; a missing trace is ErrGolden.
func TestGoldenCalls(t *testing.T) {
	trace := "# T: test\nstep 1 reset\nstep 2 begin\nstep 3 query args=1\n  sql: SELECT 1\n  columns: one\n  row: int:1\n" +
		"step 4 next\nstep 5 rows-close\nstep 6 exec args=0 affected=1\n  sql: DELETE FROM t\nstep 7 commit\n"
	fsys := fstest.MapFS{"T.trace": {Data: []byte(trace)}}
	got, err := GoldenCalls(fsys, "T")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"begin", "query: SELECT 1", "exec: DELETE FROM t", "commit"}; !slices.Equal(got, want) {
		t.Errorf("GoldenCalls = %q; want %q", got, want)
	}
	if _, err := GoldenCalls(fsys, "Missing"); !errors.Is(err, ErrGolden) {
		t.Errorf("GoldenCalls of a missing trace: %v; want ErrGolden", err)
	}
}

// TestExternal shows a transaction held across an external call reported as
// a long-transaction finding of the case, on sqlmock and on PostgreSQL, and
// the same operation committing before the call reported clean.
func TestExternal(t *testing.T) {
	tests := []struct {
		name string
		op   func() Operation
		want bool // a long-transaction finding
	}{
		{"held-across", heldAcross, true},
		{"after-commit", afterCommit, false},
		{"held-only-while-recorded", heldWhileRecorded, false},
	}
	backends := []struct {
		name string
		cfg  func(t *testing.T) Config
	}{
		{"sqlmock", func(*testing.T) Config { return Config{Backend: Sqlmock, Golden: os.DirFS("testdata")} }},
		{"postgres", func(t *testing.T) Config { return pgConfig(t) }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.cfg(t)
			cfg.Only = Case.Clean
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					rep, err := Run(t.Context(), cfg, tt.op())
					if err != nil {
						t.Fatal(err)
					}
					if len(rep.Results) != 1 {
						t.Fatalf("got %d cases; want the clean case alone", len(rep.Results))
					}
					found := false
					for _, f := range rep.Findings() {
						if f.Invariant != InvLongTx || !tt.want {
							t.Errorf("unexpected finding:\n%s", f.Error())
							continue
						}
						found = true
						if !strings.Contains(f.Message, `external call "notify"`) {
							t.Errorf("the finding does not name the call: got %q; want it to name %q", f.Message, "notify")
						}
					}
					if tt.want && !found {
						t.Errorf("no %q finding; want one for the transaction held across the call", InvLongTx)
					}
				})
			}
		})
	}
}

// TestExternalOutsideRunner: with no case's tracker in the context, External
// just calls fn with the context and returns its error.
func TestExternalOutsideRunner(t *testing.T) {
	want := errors.New("service unavailable")
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "v")
	called := false
	err := External(ctx, "title", func(got context.Context) error {
		called = got.Value(key{}) == "v"
		return want
	})
	if !called || !errors.Is(err, want) {
		t.Errorf("External: called with the context %v, returned %v; want true and %v", called, err, want)
	}
}
