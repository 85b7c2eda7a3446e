package chaos_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/chaos"
	"github.com/sessionsafe/sessionsafe/scenarios"
	"github.com/sessionsafe/sessionsafe/threadsuite"
)

// TestRunMockManyWorkers: many workers on sqlmock at once, on a 2-core machine, find
// nothing in correct code — no deadline finding either: the deadline grows with the
// workers per CPU.
func TestRunMockManyWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
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
