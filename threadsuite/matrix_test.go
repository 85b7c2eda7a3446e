package threadsuite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/leakcheck"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// pgConfig returns a Postgres matrix configuration on a fresh database.
func pgConfig(t testing.TB) scenarios.Config {
	t.Helper()
	db := pgtest.New(t, pgtest.WithMigration("handlers", handlers.Migrate))
	return scenarios.Config{Backend: scenarios.Postgres, DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName}
}

// TestMatrix puts every catalog operation through every applicable fault at
// every step, on sqlmock (expectations generated from the golden traces) and
// on real PostgreSQL.
//
// Cases run side by side, a CPU's worth at a time (Config.Parallel), each on
// a pool and application_name of its own.
func TestMatrix(t *testing.T) {
	t.Parallel() // a database of its own: it runs beside the mutation proof, which mostly waits on go test
	t.Run("sqlmock", func(t *testing.T) {
		scenarios.RunTests(t, scenarios.Config{Backend: scenarios.Sqlmock, Golden: GoldenFS(), Parallel: scenarios.DefaultParallel()}, Catalog()...)
	})
	t.Run("postgres", func(t *testing.T) {
		cfg := pgConfig(t)
		cfg.Parallel = scenarios.DefaultParallel()
		scenarios.RunTests(t, cfg, Catalog()...)
	})
}

// TestHTTPDisconnect drives the eight operations through the HTTP API with
// the client going away (the request context cancelled) at each step.
func TestHTTPDisconnect(t *testing.T) {
	t.Run("sqlmock", func(t *testing.T) {
		scenarios.RunTests(t, scenarios.Config{Backend: scenarios.Sqlmock, Golden: GoldenFS(), Disconnect: true}, HTTPCatalog()...)
	})
	t.Run("postgres", func(t *testing.T) {
		cfg := pgConfig(t)
		cfg.Disconnect = true
		scenarios.RunTests(t, cfg, HTTPCatalog()...)
	})
}

// only keeps the cases whose name (without the operation) matches re.
func only(re string) func(scenarios.Case) bool {
	rx := regexp.MustCompile(re)
	return func(c scenarios.Case) bool { return rx.MatchString(strings.TrimPrefix(c.Name(), c.Operation+"/")) }
}

// twoUnits is a planted non-atomic operation: two rows written in two
// transactions, so a fault in the second leaves half the work committed.
func twoUnits() scenarios.Operation {
	return scenarios.Operation{
		Name: "TwoUnits",
		Setup: func(ctx context.Context, db *sql.DB) (scenarios.Fixture, error) {
			if db == nil {
				return "mock", nil
			}
			if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS planted_two_units (k text, n int)`); err != nil {
				return nil, err
			}
			return fmt.Sprintf("k-%d", time.Now().UnixNano()), nil
		},
		Run: func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) error {
			for n := 1; n <= 2; n++ {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO planted_two_units VALUES ($1, $2)`, fx, n); err != nil {
					_ = tx.Rollback()
					return err
				}
				if err := tx.Commit(); err != nil {
					return err
				}
			}
			return nil
		},
		State: func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) (string, error) {
			var s string
			err := db.QueryRowContext(ctx, `SELECT count(*)::text FROM planted_two_units WHERE k = $1`, fx).Scan(&s)
			return s, err
		},
	}
}

// TestInvariantsCatchPlantedBugs shows invariants of the runner failing on
// operations written wrong for them: a check that cannot fail proves nothing.
// The invariants that catch the handlers' own session bugs are shown failing
// on those bugs as source mutants by TestMutationProof (PlantedBugs' CaughtBy).
func TestInvariantsCatchPlantedBugs(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	cat := func(name string, opts ...handlers.Option) scenarios.Operation {
		op, ok := Lookup(Catalog(opts...), name)
		if !ok {
			t.Fatalf("no catalog operation %s", name)
		}
		return op
	}
	// claimsRetry claims to retry serialization failures but does not.
	claimsRetry := cat(OpUpdateThread)
	claimsRetry.Retries = func(error) bool { return true }
	// shrinking pings on its first (recording) runs, not after: the trace
	// changes under the matrix.
	shrinking := func() scenarios.Operation {
		calls := 0
		return scenarios.Operation{
			Name:  "Shrinking",
			Setup: func(context.Context, *sql.DB) (scenarios.Fixture, error) { return nil, nil },
			Run: func(ctx context.Context, db *sql.DB, _ scenarios.Fixture) error {
				if calls++; calls > 2 {
					return nil
				}
				return db.PingContext(ctx)
			},
		}
	}
	// hangs ignores its context and blocks, once recorded — before its
	// statement, so that the verdict does not hang on how long that
	// statement takes on a loaded machine.
	hangs := func() scenarios.Operation {
		calls := 0
		return scenarios.Operation{
			Name:  "Hangs",
			Setup: func(context.Context, *sql.DB) (scenarios.Fixture, error) { return nil, nil },
			Run: func(ctx context.Context, db *sql.DB, _ scenarios.Fixture) error {
				if calls++; calls > 2 {
					<-release
				}
				_, err := db.ExecContext(ctx, "SELECT 1")
				return err
			},
		}
	}
	// golden traces for the two on sqlmock
	plantedGolden := fstest.MapFS{
		"Shrinking.trace": {Data: []byte("step 1 ping\n")},
		"Hangs.trace":     {Data: []byte("step 1 exec affected=0\n  sql: SELECT 1\n")},
	}

	tests := []struct {
		name    string
		backend faults.Backend
		op      scenarios.Operation
		cases   string
		timeout time.Duration
		want    scenarios.Invariant
	}{
		{"all-or-nothing/two-units/postgres", scenarios.Postgres, twoUnits(), `^step-[0-9]+-exec/error$`, 0, scenarios.InvAllOrNothing},
		{"sqlmock-expectations/stale-golden/sqlmock", scenarios.Sqlmock, cat(OpUpdateThread), `^step-0-clean/clean$`, 0, scenarios.InvExpectations},
		{"retry-succeeded/claims-retry/sqlmock", scenarios.Sqlmock, claimsRetry, `query/error$`, 0, scenarios.InvRetried},
		{"fault-fired/trace-changes/sqlmock", scenarios.Sqlmock, shrinking(), `ping/error$`, 0, scenarios.InvFired},
		{"fault-fired/trace-changes/postgres", scenarios.Postgres, shrinking(), `ping/error$`, 0, scenarios.InvFired},
		{"deadline/ignores-context/sqlmock", scenarios.Sqlmock, hangs(), `clean`, 200 * time.Millisecond, scenarios.InvDeadline},
		{"deadline/ignores-context/postgres", scenarios.Postgres, hangs(), `clean`, 200 * time.Millisecond, scenarios.InvDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := scenarios.Config{Backend: scenarios.Sqlmock, Golden: GoldenFS()}
			if tt.op.Name == "Shrinking" || tt.op.Name == "Hangs" {
				cfg.Golden = plantedGolden
			}
			if strings.Contains(tt.name, "stale-golden") {
				cfg.Golden = staleGolden(t, OpUpdateThread)
			}
			if tt.backend == scenarios.Postgres {
				cfg = pgConfig(t)
			}
			cfg.Only, cfg.Timeout = only(tt.cases), tt.timeout
			rep, err := scenarios.Run(t.Context(), cfg, tt.op)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Results) == 0 {
				t.Fatalf("no case matched %q", tt.cases)
			}
			var seen []string
			for _, f := range rep.Findings() {
				if f.Invariant == tt.want {
					t.Logf("caught by %s:\n%s", f.Case.Name(), f.Error())
					return
				}
				seen = append(seen, string(f.Invariant)+" at "+f.Case.Name())
			}
			t.Errorf("no %q finding in %d cases; got %v", tt.want, len(rep.Results), seen)
		})
	}
}

// benchMatrix runs every case of every catalog operation once per iteration,
// cfg.Parallel at a time, and reports matrix cases per second.
func benchMatrix(b *testing.B, cfg scenarios.Config) {
	var runners []*scenarios.Runner
	for _, op := range Catalog() {
		r, err := scenarios.NewRunner(b.Context(), cfg, op)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = r.Close() })
		runners = append(runners, r)
	}
	cases := 0
	for b.Loop() {
		for _, r := range runners {
			for _, res := range r.RunCases(b.Context(), r.Cases(), cfg.Parallel, nil) {
				if res.Failed() {
					b.Fatal(res.Findings[0].Error())
				}
				cases++
			}
		}
	}
	b.ReportMetric(float64(cases)/b.Elapsed().Seconds(), "cases/s")
	b.ReportMetric(float64(cases)/float64(b.N), "cases/matrix")
}

// BenchmarkMatrix measures matrix cases per second: every catalog operation
// × every step × every applicable fault, with all checks, on sqlmock and on
// real PostgreSQL, one case at a time and several at once (parallel=N:
// Config.Parallel).
func BenchmarkMatrix(b *testing.B) {
	for _, p := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("sqlmock/parallel=%d", p), func(b *testing.B) {
			benchMatrix(b, scenarios.Config{Backend: scenarios.Sqlmock, Golden: GoldenFS(), Parallel: p})
		})
		b.Run(fmt.Sprintf("postgres/parallel=%d", p), func(b *testing.B) {
			cfg := pgConfig(b)
			cfg.Parallel = p
			benchMatrix(b, cfg)
		})
	}
}

// BenchmarkHarnessRatio compares, per catalog operation on the same
// PostgreSQL in the same run, the harness's own cost per case (fresh state,
// warming, arming, the state read-back and the leak checks: the case's
// duration minus the operation's) with the bare operation (Run on the plain
// warm pool, its fixture prepared beforehand). Each iteration runs the bare
// operation and then the clean case, side by side; after the loop one pass
// over every case of the matrix gives the mean harness cost of a faulted case
// (which also pays for reconnecting after faults that kill the connection).
// Goal: harness/bare ≤ 2.
func BenchmarkHarnessRatio(b *testing.B) {
	cfg := pgConfig(b)
	for _, op := range Catalog() {
		b.Run(op.Name, func(b *testing.B) {
			ctx := b.Context()
			r, err := scenarios.NewRunner(ctx, cfg, op)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			cases := r.Cases()
			var bare, harness time.Duration
			n := 0
			for b.Loop() {
				fx, err := op.Setup(ctx, cfg.DB)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := op.Run(ctx, cfg.DB, fx); err != nil {
					b.Fatal(err)
				}
				bare += time.Since(start)
				res := r.RunCase(ctx, cases[0]) // the clean case
				if res.Failed() {
					b.Fatal(res.Findings[0].Error())
				}
				harness += res.Duration - res.RunTime
				n++
			}
			b.StopTimer()
			var all time.Duration
			for _, c := range cases {
				res := r.RunCase(ctx, c)
				if res.Failed() {
					b.Fatal(res.Findings[0].Error())
				}
				all += res.Duration - res.RunTime
			}
			ms := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
			b.ReportMetric(ms(bare, n), "bare-ms")
			b.ReportMetric(ms(harness, n), "harness-ms")
			b.ReportMetric(ms(harness, n)/ms(bare, n), "harness/bare")
			b.ReportMetric(ms(all, len(cases)), "matrix-harness-ms")
			b.ReportMetric(ms(all, len(cases))/ms(bare, n), "matrix-harness/bare")
		})
	}
}

// staleGolden returns golden traces in which op's query has changed: the code
// no longer matches them.
func staleGolden(t *testing.T, op string) fs.FS {
	t.Helper()
	b, err := fs.ReadFile(GoldenFS(), op+".trace")
	if err != nil {
		t.Fatal(err)
	}
	stale := strings.Replace(string(b), "SET title", "SET name", 1)
	if stale == string(b) {
		t.Fatalf("%s.trace has no %q to change", op, "SET title")
	}
	return fstest.MapFS{op + ".trace": {Data: []byte(stale)}}
}

// BenchmarkHarnessParts measures each part of a case's harness cost alone,
// on PostgreSQL, for UpdateThread: what BenchmarkHarnessRatio's harness-ms
// is made of (warming the instrumented pool, inside the runner, is not
// measured alone; the pool check runs on the plain pool).
func BenchmarkHarnessParts(b *testing.B) {
	cfg := pgConfig(b)
	op, _ := Lookup(Catalog(), OpUpdateThread)
	ctx := b.Context()
	fx, err := op.Setup(ctx, cfg.DB)
	if err != nil {
		b.Fatal(err)
	}
	parts := []struct {
		name string
		fn   func() error
	}{
		{"setup", func() error { _, err := op.Setup(ctx, cfg.DB); return err }},
		{"state", func() error { _, err := op.State(ctx, cfg.DB, fx); return err }},
		{"pool-check", func() error { return leakcheck.Find(ctx, leakcheck.WithDB(cfg.DB)) }},
		{"server-check", func() error { return leakcheck.Find(ctx, leakcheck.WithServer(cfg.Admin, cfg.AppName)) }},
		{"goroutine-baseline", func() error { _ = goleak.IgnoreCurrent(); return nil }},
		{"goroutine-check", func() error {
			return leakcheck.Find(ctx, leakcheck.WithGoroutines(goleak.IgnoreCurrent()))
		}},
		{"bare-operation", func() error { return op.Run(ctx, cfg.DB, fx) }},
	}
	for _, p := range parts {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				if err := p.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
