package scenarios

import (
	"context"
	"database/sql"
	"io/fs"
	"maps"
	"os"
	"slices"
	"testing"
	"testing/fstest"
	"time"
)

// leaksOnError is a bug: when its write fails it starts a goroutine that
// outlives the call (parked until the test ends), so only the cases whose
// fault reaches the write may report it — never a case beside them.
func leaksOnError(t *testing.T) Operation {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return verdictOp("LeaksOnError", func(ctx context.Context, db *sql.DB, key string) error {
		var v int
		if err := db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, key).Scan(&v); err != nil {
			return err
		}
		_, err := db.ExecContext(ctx, bumpSQL, key)
		if err != nil {
			go func() { <-release }()
		}
		return err
	})
}

// parallelGolden is testdata with LeaksOnError's golden trace: ReadThenBump's,
// the same statements.
func parallelGolden(t *testing.T) fs.FS {
	t.Helper()
	b, err := fs.ReadFile(os.DirFS("testdata"), "ReadThenBump.trace")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{"LeaksOnError.trace": {Data: b}}
	names, err := fs.Glob(os.DirFS("testdata"), "*.trace")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := fs.ReadFile(os.DirFS("testdata"), n)
		if err != nil {
			t.Fatal(err)
		}
		m[n] = &fstest.MapFile{Data: b}
	}
	return m
}

// TestParallelVerdicts runs the same operations — the bugs planted in this
// package's tests and correct code beside them — one case at a time and
// four at a time, on sqlmock and on PostgreSQL, and requires the same
// verdict for every case: a leak of one case is never blamed on a case
// running beside it, and none is missed.
func TestParallelVerdicts(t *testing.T) {
	for _, b := range verdictBackends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.cfg(t)
			ops := []Operation{leaksOnError(t), readThenBumpBackground, heldAcross()}
			if cfg.Backend == Sqlmock {
				cfg.Golden = parallelGolden(t)
			} else {
				ops = append(ops, swallowsOnConn, preparedNeverClosed, setInTx("SessionSet", "SET statement_timeout = 4321"))
			}
			var took []time.Duration
			run := func(parallel int) map[string]string {
				c := cfg
				c.Parallel = parallel
				rep, err := Run(t.Context(), c, ops...)
				if err != nil {
					t.Fatal(err)
				}
				took = append(took, rep.Duration)
				return verdicts(rep)
			}
			seq, par := run(1), run(4)
			failing := 0
			for _, name := range slices.Sorted(maps.Keys(seq)) {
				if seq[name] != "" {
					failing++
				}
				if got, ok := par[name]; !ok {
					t.Errorf("%s: broke [%s] one at a time; not run in parallel", name, seq[name])
				} else if got != seq[name] {
					t.Errorf("%s: broke [%s] in parallel; want [%s], as one at a time", name, got, seq[name])
				}
			}
			for name := range par {
				if _, ok := seq[name]; !ok {
					t.Errorf("%s: run in parallel only", name)
				}
			}
			if failing == 0 {
				t.Fatalf("no case of %d failed; want the planted bugs caught", len(seq))
			}
			t.Logf("%d cases, %d failing, the same verdicts in parallel (one at a time %s, four at a time %s)", len(seq), failing, took[0], took[1])
		})
	}
}
