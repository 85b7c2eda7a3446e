package threadsuite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
	"github.com/sessionsafe/sessionsafe/threadsuite"
)

func chaosTarget(tb testing.TB) chaos.Target {
	tb.Helper()
	db := pgtest.New(tb, pgtest.WithMigration("handlers-v1", handlers.Migrate))
	return chaos.Target{DSN: db.DSN, Admin: db.Admin, AppName: db.AppName}
}

// TestChaos runs the handlers under chaos on real PostgreSQL: no violation, faults fired.
func TestChaos(t *testing.T) {
	ctx, cancel := context.WithDeadline(t.Context(), testkit.Within(t, 10*time.Minute))
	t.Cleanup(cancel)
	const seed = 7
	t.Logf("seed %d", seed)
	res, err := chaos.Run(ctx, threadsuite.ChaosWorkload(), chaos.Config{Seed: seed, Workers: 4, Ops: 400, FaultRate: 0.05, Panics: true, NoGoroutineCheck: true}, chaosTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ops %d errors %d faults %d acked %d ambiguous %d in %s", res.Operations, res.Errors, res.Faults, res.Acked, res.Ambiguous, res.Duration)
	for _, v := range res.Violations {
		t.Errorf("violation: %s\ntrace:\n%s\nattribution:\n%s", v, v.Trace, v.Attribution)
	}
	if res.Faults == 0 {
		t.Errorf("no fault fired in %d operations at rate 0.05: the run tested nothing", res.Operations)
	}
}

// TestChaosMockManyWorkers: many workers on sqlmock at once, on a 2-core machine, find
// nothing in correct code — no deadline finding either: the deadline grows with the
// workers per CPU.
func TestChaosMockManyWorkers(t *testing.T) {
	// bounded by the test's own deadline (go test -timeout), not a fixed window: on a
	// loaded machine 256 workers under -race take minutes, and a run cut short fails its
	// cases' setup
	ctx, cancel := context.WithDeadline(t.Context(), testkit.Within(t, 10*time.Minute))
	t.Cleanup(cancel)
	const seed = 17
	t.Logf("seed %d", seed)
	cfg := chaos.Config{Seed: seed, Workers: 256, Ops: 1024}
	res, err := chaos.RunMock(ctx, cfg, threadsuite.Catalog(), threadsuite.GoldenFS(), func(c scenarios.Case) string { return c.Name() })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ops %d faults %d in %s (deadline %s)", res.Operations, res.Faults, res.Duration, chaos.DefaultOpTimeout(cfg.Workers))
	for _, f := range res.Findings {
		t.Errorf("worker %d op %d: %s: %s", f.Worker, f.OpIndex, f.Finding.Invariant, f.Finding.Message)
	}
	if res.Operations != int64(cfg.Ops) {
		t.Errorf("ran %d operations; want %d", res.Operations, cfg.Ops)
	}
}

// BenchmarkChaos measures the handlers' chaos throughput (operations per second over all
// workers) with faults and every check on ("checked") next to the same workload with no
// fault and no check ("baseline") and every check with no fault ("checks-only"), in the
// same process on the same server. One b.N is one operation.
func BenchmarkChaos(b *testing.B) {
	for _, workers := range []int{8, 32} {
		for _, mode := range []string{"baseline", "checks-only", "checked"} {
			b.Run(fmt.Sprintf("workers=%d/%s", workers, mode), func(b *testing.B) {
				tg := chaosTarget(b)
				cfg := chaos.Config{Seed: 1, Workers: workers, Ops: max(b.N, workers), FaultRate: 0.03, NoGoroutineCheck: true}
				switch mode {
				case "baseline":
					cfg.NoChecks = true
				case "checks-only":
					cfg.FaultRate = 0
				}
				b.ResetTimer()
				res, err := chaos.Run(context.Background(), threadsuite.ChaosWorkload(), cfg, tg)
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
