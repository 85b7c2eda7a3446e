package chaos_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/chaos"
)

// TestShrinkConfirms: the shrinker accepts its smallest failing configuration only when it
// fails again on every rerun; a violation that does not reproduce alone leaves the original
// run reported, with ErrNotReproduced saying why.
func TestShrinkConfirms(t *testing.T) {
	orig := chaos.Config{Seed: 5, Workers: 4, Ops: 40, FaultRate: 0.05}
	res := &chaos.Result{Seed: 5, Workers: 4, Operations: 40, WorkerOps: map[int]int{0: 10, 1: 8, 2: 10, 3: 10},
		FaultOps:   map[int][]int{1: {3, 7}},
		Violations: []chaos.Violation{{Invariant: "pool", Worker: 1, StreamSeed: 6, OpIndex: 7, Operation: "send message"}}}
	violation := func(c chaos.Config, inv string) *chaos.Result {
		op := max(c.Ops-1, c.From)
		return &chaos.Result{Seed: c.Seed, Workers: c.Workers, WorkerOps: map[int]int{0: op + 1},
			Violations: []chaos.Violation{{Invariant: inv, Worker: 0, StreamSeed: c.Seed, OpIndex: op}}}
	}
	tests := []struct {
		name        string
		fails       func(call int, c chaos.Config) string // the invariant the call breaks ("": it passes)
		wantReduced bool
		wantErr     error
	}{
		{"reproduces", func(int, chaos.Config) string { return "pool" }, true, nil},
		{"flaky", func(call int, _ chaos.Config) string {
			if call%2 == 1 {
				return "pool"
			}
			return ""
		}, false, chaos.ErrNotReproduced},
		// A candidate breaking another invariant (a deadline, as a loaded machine might) is
		// no smaller case of this violation: the shrinker goes on without it.
		{"other-invariant-is-not-it", func(call int, c chaos.Config) string {
			if c.Workers == 1 && c.FaultRate == 0 {
				return "deadline"
			}
			return "pool"
		}, true, nil},
		{"nothing-smaller-fails", func(int, chaos.Config) string { return "" }, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			run := func(_ context.Context, c chaos.Config, _ chaos.Target) (*chaos.Result, error) {
				calls++
				if inv := tt.fails(calls, c); inv != "" {
					return violation(c, inv), nil
				}
				return &chaos.Result{Seed: c.Seed, Workers: c.Workers}, nil
			}
			newTarget := func(context.Context) (chaos.Target, func(), error) { return chaos.Target{}, func() {}, nil }
			var log strings.Builder
			sh, err := chaos.ShrinkRunning(context.Background(), orig, res, newTarget, time.Hour, 24, &log, run)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d runs; shrink log:\n%s", calls, log.String())
			if sh.Reduced != tt.wantReduced {
				t.Errorf("Reduced = %v; want %v (config %s)", sh.Reduced, tt.wantReduced, chaos.Describe(sh.Config))
			}
			if !errors.Is(sh.Err, tt.wantErr) || (tt.wantErr == nil) != (sh.Err == nil) {
				t.Errorf("Err = %v; want %v", sh.Err, tt.wantErr)
			}
			if !tt.wantReduced {
				if sh.Config.Workers != orig.Workers || sh.Config.Ops != orig.Ops || sh.Violation.Worker != 1 || sh.Violation.OpIndex != 7 {
					t.Errorf("got %s, violation %+v; want the original run and its violation", chaos.Describe(sh.Config), sh.Violation)
				}
			} else if sh.Config.Workers != 1 || sh.Violation.Invariant != "pool" || tt.name == "other-invariant-is-not-it" && sh.Config.FaultRate == 0 {
				t.Errorf("shrunk to %s, violation %+v; want one worker breaking pool (with faults, when only a deadline broke without)", chaos.Describe(sh.Config), sh.Violation)
			}
			if tt.wantErr != nil && !strings.Contains(log.String(), "did not reproduce alone") {
				t.Errorf("the shrink log does not say the violation did not reproduce alone:\n%s", log.String())
			}
		})
	}
}
