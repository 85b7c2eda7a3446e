package chaos_test

import (
	"context"
	"strings"

	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/internal/chaos"
	"github.com/sessionsafe/sessionsafe/internal/mutant"
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

// TestRunPlanted shows every invariant of a chaos run failing on a planted session bug. A
// run is a few hundred operations; one that ends without the finding (a finding of another
// kind can stop a worker first on a loaded machine) is followed by one on the next seed, on
// a fresh database, until the bug is caught or the test's deadline is near.
func TestRunPlanted(t *testing.T) {
	tests := []struct {
		bug  mutant.Bug
		want []string // the invariants any one of which must report it
	}{
		{mutant.RowsNotClosed, []string{"unexpected-error", "pool"}},
		{mutant.RollbackMissingOnError, []string{"pool", "deadline"}},
		{mutant.CommitErrorIgnored, []string{"ledger"}},
		{mutant.TxHeldAcrossTitleGenerator, []string{"long-transaction"}},
		{mutant.ConnNeverClosed, []string{"pool"}},
		{mutant.SendRetryWithoutClientID, []string{"ledger"}},
		{mutant.RowsErrUnchecked, []string{"swallowed-error"}},
	}
	for _, tt := range tests {
		t.Run(tt.bug.String(), func(t *testing.T) {
			ctx := untilDeadline(t)
			var ops, faults int64
			for seed := int64(11); ctx.Err() == nil; seed++ {
				t.Logf("seed %d", seed)
				res, err := chaos.Run(ctx, chaos.Config{Seed: seed, Workers: 2, Ops: 300, FaultRate: 0.1, Plant: []mutant.Bug{tt.bug},
					NoGoroutineCheck: true}, target(t))
				if err != nil {
					t.Fatal(err)
				}
				ops, faults = ops+res.Operations, faults+res.Faults
				for _, v := range res.Violations {
					t.Logf("violation: %s", v)
					for _, inv := range tt.want {
						if v.Invariant == inv && !res.Interrupted {
							return
						}
					}
				}
			}
			t.Errorf("planted %s: no %v violation in %d operations (%d faults) before the test's deadline", tt.bug, tt.want, ops, faults)
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

func TestShrinkPlanted(t *testing.T) {
	tg := target(t)
	ctx := untilDeadline(t)
	cfg := chaos.Config{Seed: 3, Workers: 4, Ops: 400, FaultRate: 0.05, Plant: []mutant.Bug{mutant.RollbackMissingOnError}, NoGoroutineCheck: true, CheckTimeout: 300 * time.Millisecond}
	res, err := chaos.Run(ctx, cfg, tg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) == 0 {
		t.Fatalf("planted RollbackMissingOnError: no violation in %d operations", res.Operations)
	}
	newTarget := func(ctx context.Context) (chaos.Target, func(), error) { return target(t), func() {}, nil }
	var log strings.Builder
	// The attempts bound the shrinking, not the clock: a loaded machine takes longer.
	deadline, _ := ctx.Deadline()
	sh, err := chaos.Shrink(ctx, cfg, res, newTarget, time.Until(deadline), 20, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shrunk in %s, %d attempts: %s\n%s", sh.Took, sh.Attempts, chaos.Describe(sh.Config), log.String())
	if sh.Err != nil {
		t.Errorf("shrink: %v", sh.Err)
	}
	if !sh.Reduced || sh.Config.Workers != 1 || sh.Config.Ops > 50 {
		t.Errorf("shrunk to %s; want one worker and a few operations", chaos.Describe(sh.Config))
	}
	again, err := chaos.Run(ctx, sh.Config, target(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Violations) == 0 {
		t.Errorf("the shrunk configuration %s passes: it does not reproduce", chaos.Describe(sh.Config))
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
