package bank

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// chaosTarget returns a fresh migrated bank database to run chaos on.
func chaosTarget(tb testing.TB) chaos.Target {
	tb.Helper()
	db := pgtest.New(tb, pgtest.WithMigration("bank-v1", Migrate))
	return chaos.Target{DSN: db.DSN, Admin: db.Admin, AppName: db.AppName}
}

// TestChaos runs the bank's stores under chaos on real PostgreSQL: no violation on correct
// code, and faults fired.
func TestChaos(t *testing.T) {
	tests := []struct {
		name string
		wl   *chaos.Workload
	}{
		{"database-sql", chaosWorkload("bank", theStore, nil)},
		{"pgx", PgxCatalog().Chaos},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithDeadline(t.Context(), testkit.Within(t, 10*time.Minute))
			t.Cleanup(cancel)
			const seed = 7
			cfg := chaos.Config{Seed: seed, Workers: 4, Ops: 200, FaultRate: 0.05, NoGoroutineCheck: true, MaxWrites: 32, Panics: !tt.wl.Pgx}
			res, err := chaos.Run(ctx, tt.wl, cfg, chaosTarget(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("seed %d: ops %d errors %d faults %d acked %d ambiguous %d in %s", seed, res.Operations, res.Errors, res.Faults, res.Acked, res.Ambiguous, res.Duration)
			for _, v := range res.Violations {
				t.Errorf("violation: %s\nreplay: go test -run 'TestChaos/%s' ./examples/bank (seed %d)\ntrace:\n%s\nattribution:\n%s", v, tt.name, seed, v.Trace, v.Attribution)
			}
			if res.Faults == 0 || res.Acked == 0 {
				t.Errorf("%d faults fired, %d writes acknowledged in %d operations: the run tested nothing", res.Faults, res.Acked, res.Operations)
			}
		})
	}
}

// TestChaosPlanted shows chaos catching each planted copy of the bank's stores: a run on
// the planted store must end with a violation of one of the invariants the bug breaks. A
// run that ends without one (a finding of another kind can stop a worker first) is
// followed by one on the next seed, on a fresh database, until the test's deadline is near.
func TestChaosPlanted(t *testing.T) {
	tests := []struct {
		name string
		wl   *chaos.Workload
		want []string
	}{
		{"no-deferred-rollback", chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return noDeferredRollback{NewStore(db, n)} }, nil),
			[]string{"pool", "server"}},
		{"rows-left-open", chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return rowsLeftOpen{NewStore(db, n)} }, nil),
			[]string{"pool"}},
		{"notifies-in-tx", chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return notifiesInTx{NewStore(db, n)} }, nil),
			[]string{"long-transaction"}},
		{"swallowed-error", chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return swallowedError{NewStore(db, n)} }, nil),
			[]string{"ledger", "read"}},
		{"pgx/panic-no-deferred-rollback", chaosWorkload("bank-pgx", nil, func(p *pgxpool.Pool, n Notifier) accounts { return pgxPanicNoRollback{NewPgxStore(p, n)} }),
			[]string{"pool", "panic"}},
		{"pgx/rows-left-open", chaosWorkload("bank-pgx", nil, func(p *pgxpool.Pool, n Notifier) accounts { return pgxRowsLeftOpen{NewPgxStore(p, n)} }),
			[]string{"pool"}},
		{"pgx/notifies-in-tx", chaosWorkload("bank-pgx", nil, func(p *pgxpool.Pool, n Notifier) accounts { return pgxNotifiesInTx{NewPgxStore(p, n)} }),
			[]string{"long-transaction"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := untilDeadline(t)
			var ops, fired int64
			for seed := int64(11); ctx.Err() == nil; seed++ {
				cfg := chaos.Config{Seed: seed, Workers: 2, Ops: 120, FaultRate: 0.1, NoGoroutineCheck: true, MaxWrites: 32, Panics: !tt.wl.Pgx}
				res, err := chaos.Run(ctx, tt.wl, cfg, chaosTarget(t))
				if err != nil {
					t.Fatal(err)
				}
				ops, fired = ops+res.Operations, fired+res.Faults
				for _, v := range res.Violations {
					t.Logf("seed %d: violation: %s", seed, v)
					for _, inv := range tt.want {
						if v.Invariant == inv && !res.Interrupted {
							return
						}
					}
				}
			}
			t.Errorf("planted %s: no %v violation in %d operations (%d faults) before the test's deadline", tt.name, tt.want, ops, fired)
		})
	}
}

// untilDeadline returns a context that ends shortly before the test's deadline (or in five
// minutes without one), for a test that tries until it sees what it wants.
func untilDeadline(t *testing.T) context.Context {
	t.Helper()
	d, ok := t.Deadline()
	if !ok {
		d = time.Now().Add(5 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), d.Add(-15*time.Second))
	t.Cleanup(cancel)
	return ctx
}

// TestChaosShrink shrinks a planted store's violation to one worker's short stream, and the
// shrunk configuration replays it.
func TestChaosShrink(t *testing.T) {
	ctx := untilDeadline(t)
	wl := chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return noDeferredRollback{NewStore(db, n)} }, nil)
	cfg := chaos.Config{Seed: 1, Workers: 2, Ops: 120, FaultRate: 0.1, Panics: true, NoGoroutineCheck: true, CheckTimeout: 500 * time.Millisecond}
	res, err := chaos.Run(ctx, wl, cfg, chaosTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) == 0 {
		t.Fatalf("seed %d: the planted store gave no violation in %d operations", cfg.Seed, res.Operations)
	}
	newTarget := func(context.Context) (chaos.Target, func(), error) { return chaosTarget(t), func() {}, nil }
	var log strings.Builder
	deadline, _ := ctx.Deadline()
	sh, err := chaos.Shrink(ctx, wl, cfg, res, newTarget, time.Until(deadline), 12, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shrunk in %s, %d attempts: %s\n%s", sh.Took, sh.Attempts, chaos.Describe(sh.Config), log.String())
	if sh.Err != nil {
		t.Errorf("shrink: %v", sh.Err)
	}
	if !sh.Reduced || sh.Config.Workers != 1 {
		t.Errorf("shrunk to %s; want one worker", chaos.Describe(sh.Config))
	}
	again, err := chaos.Run(ctx, wl, sh.Config, chaosTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Violations) == 0 || again.Violations[0].Invariant != sh.Violation.Invariant {
		t.Errorf("the shrunk configuration %s gave %v; want a %s violation again", chaos.Describe(sh.Config), again.Violations, sh.Violation.Invariant)
	}
}

// BenchmarkChaos measures the bank's chaos throughput (operations per second over all
// workers), on each store: with faults and every check on ("checked"), next to the same
// workload with every check and no fault ("checks-only") and with neither ("baseline"),
// paired in one run on the same server. One b.N is one operation.
func BenchmarkChaos(b *testing.B) {
	stores := []struct {
		name string
		wl   *chaos.Workload
	}{
		{"database-sql", chaosWorkload("bank", theStore, nil)},
		{"pgx", PgxCatalog().Chaos},
	}
	for _, st := range stores {
		for _, mode := range []string{"baseline", "checks-only", "checked"} {
			b.Run(st.name+"/workers=8/"+mode, func(b *testing.B) {
				tg := chaosTarget(b)
				cfg := chaos.Config{Seed: 1, Workers: 8, Ops: max(b.N, 8), FaultRate: 0.03, NoGoroutineCheck: true}
				switch mode {
				case "baseline":
					cfg.NoChecks = true
				case "checks-only":
					cfg.FaultRate = 0
				}
				b.ResetTimer()
				res, err := chaos.Run(context.Background(), st.wl, cfg, tg)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Violations) > 0 {
					b.Fatalf("violation in a clean run: %s", res.Violations[0])
				}
				b.ReportMetric(res.OpsPerSec(), "ops/s")
			})
		}
	}
}
