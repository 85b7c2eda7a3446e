package chaos_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/internal/chaos"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }

func target(t testing.TB) chaos.Target {
	t.Helper()
	db := pgtest.New(t, pgtest.WithMigration("handlers-v1", handlers.Migrate))
	return chaos.Target{DSN: db.DSN, Admin: db.Admin, AppName: db.AppName}
}

func TestRunClean(t *testing.T) {
	tg := target(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	const seed = 7
	t.Logf("seed %d", seed)
	res, err := chaos.Run(ctx, chaos.Config{Seed: seed, Workers: 4, Ops: 200, FaultRate: 0.05, NoGoroutineCheck: true}, tg)
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

// TestRunManyWorkers: a correct run with many workers on a loaded 2-core machine is no
// finding: an operation queued for a connection — the server forking backends for every
// worker at once, or a share of its connections smaller than the workers — is not charged
// to its deadline, which grows with the workers per CPU.
func TestRunManyWorkers(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		share   int // connections the workers share (0: what the server has free)
	}{
		{"workers-100", 100, 0},
		{"workers-48-share-4", 48, 4},   // more workers than connections: none kept idle
		{"workers-24-share-32", 24, 32}, // fewer: each keeps one idle
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := target(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			t.Cleanup(cancel)
			const seed = 13
			t.Logf("seed %d", seed)
			cfg := chaos.Config{Seed: seed, Workers: tt.workers, Ops: 3 * tt.workers, FaultRate: 0.03, NoGoroutineCheck: true}
			if tt.share > 0 {
				chaos.SetConnShare(&cfg, tt.share)
			}
			res, err := chaos.Run(ctx, cfg, tg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("ops %d faults %d acked %d in %s, %s queued for a connection", res.Operations, res.Faults, res.Acked, res.Duration, res.Queued)
			for _, v := range res.Violations {
				t.Errorf("violation: %s\ntrace:\n%s", v, v.Trace)
			}
			if res.Operations != int64(cfg.Ops) {
				t.Errorf("ran %d operations; want %d", res.Operations, cfg.Ops)
			}
		})
	}
}
