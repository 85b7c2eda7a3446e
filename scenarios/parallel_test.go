package scenarios

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
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
// running beside it, and none is missed. The two runs go side by side, each
// on a database of its own (most of their time is checks waiting out their
// deadlines on the planted leaks).
func TestParallelVerdicts(t *testing.T) {
	t.Parallel() // databases of its own; most of its time is waiting
	for _, b := range verdictBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			// one at a time, then four at a time: each on a database of its own
			cfgs := []Config{b.cfg(t), b.cfg(t)}
			cfgs[0].Parallel, cfgs[1].Parallel = 1, 4
			ops := []Operation{leaksOnError(t), readThenBumpBackground, heldAcross()}
			if cfgs[0].Backend == Sqlmock {
				golden := parallelGolden(t)
				cfgs[0].Golden, cfgs[1].Golden = golden, golden
			} else {
				ops = append(ops, swallowsOnConn, preparedNeverClosed, setInTx("SessionSet", "SET statement_timeout = 4321"))
			}
			reps := make([]Report, 2)
			errs := testkit.FanOut(2, func(i int) error {
				var err error
				reps[i], err = Run(t.Context(), cfgs[i], ops...)
				return err
			})
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			seq, par := reps[0], reps[1]
			for _, d := range seq.VerdictDiff(par) {
				t.Errorf("one at a time, then four at a time: %s", d)
			}
			failing := 0
			for _, res := range seq.Results {
				if res.Failed() {
					failing++
				}
			}
			if failing == 0 {
				t.Fatalf("no case of %d failed; want the planted bugs caught", len(seq.Results))
			}
			t.Logf("%d cases, %d failing; one at a time %s, four at a time %s", len(seq.Results), failing, seq.Duration, par.Duration)
		})
	}
}

// TestSharedFixtureRefused: on Postgres, a case whose Setup returns the
// fixture of a case running beside it on another lane is refused (both
// would read back each other's writes); once that case is done, or on
// sqlmock, where fixtures are placeholders, the same fixture is fine.
func TestSharedFixtureRefused(t *testing.T) {
	type fx struct{ Owner string }
	r := &Runner{cfg: Config{Backend: Postgres}}
	a, b := &lane{}, &lane{}
	releaseA, err := r.claimFixture(a, fx{"owner-1"})
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if _, err := r.claimFixture(b, fx{"owner-1"}); err == nil || !strings.Contains(err.Error(), "same fixture as a case running beside it") {
		t.Fatalf("claim of an equal fixture beside it = %v; want the shared fixture refused", err)
	}
	releaseB, err := r.claimFixture(b, fx{"owner-2"})
	if err != nil {
		t.Fatalf("claim of another fixture: %v", err)
	}
	releaseA()
	releaseB()
	if _, err := r.claimFixture(b, fx{"owner-1"}); err != nil {
		t.Fatalf("claim after the first case ended: %v", err)
	}
	mock := &Runner{cfg: Config{Backend: Sqlmock}}
	for _, l := range []*lane{a, b} {
		if _, err := mock.claimFixture(l, fx{"mock"}); err != nil {
			t.Fatalf("sqlmock claim: %v", err)
		}
	}
}

// TestVerdictDiff: two reports that disagree on a case, or where one ran a
// case the other did not, differ on exactly those cases.
func TestVerdictDiff(t *testing.T) {
	c := func(step int) Case {
		return Case{Operation: "Op", Step: step, StepKind: faults.StepExec, Fault: faults.Fault{Kind: faults.KindError}}
	}
	res := func(step int, invs ...Invariant) Result {
		r := Result{Case: c(step)}
		for _, inv := range invs {
			r.Findings = append(r.Findings, Finding{Case: c(step), Invariant: inv})
		}
		return r
	}
	a := Report{Results: []Result{res(1), res(2, InvPool, InvGoroutines), res(3, InvServer)}}
	b := Report{Results: []Result{res(1), res(2, InvGoroutines, InvPool), res(3), res(4)}}
	got := a.VerdictDiff(b)
	want := []string{
		"Op/step-3-exec/error: broke [server] in the first run, [] in the second",
		"Op/step-4-exec/error: broke [] in the second run; not run in the first",
	}
	if !slices.Equal(got, want) {
		t.Errorf("VerdictDiff = %q; want %q", got, want)
	}
	if d := a.VerdictDiff(a); len(d) != 0 {
		t.Errorf("a report against itself: %q; want no difference", d)
	}
}
