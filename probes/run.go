package probes

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// cancelGrace is how long a run with deadline timeout has to return once
// the probe cancelled it; one that takes longer does not honour its context
// (a deadline finding). It is the timeout once more, at least 2s: a run that
// honours its context returns soon after its cancellation, but on a loaded
// machine that unwinding waits for a CPU as the run's own work did, so a
// fixed window is one a correct run could outlast and be reported hung; the
// timeout is what a probe sizes to its load.
func cancelGrace(timeout time.Duration) time.Duration {
	return max(timeout, 2*time.Second)
}

// outcome is what one run did, and what the probe saw while it ran.
type outcome struct {
	run Run
	// at the deadline, or when it asked for a second connection: what it
	// waited for (a description, the stacks, the goroutine holding it)
	waited   string
	stack    string
	holder   int
	second   bool // it waited for a connection of a pool all its own (PoolOfOne)
	hung     bool // it did not return once cancelled
	dump     string
	duration time.Duration
	// cancel ends the run's context: called after the round's checks, so
	// that what the run left open is still open when they look.
	cancel context.CancelFunc
}

// runOpts says how runOne watches a run.
type runOpts struct {
	timeout time.Duration
	// second: a wait for a connection of the lane's pool is a finding at
	// once (the lane is the run's alone: it waits on itself).
	second bool
	// atDeadline describes, while the run still waits, what it waits for.
	atDeadline func(ctx context.Context, l *lane) (waited, stack string, holder int)
}

// pollEvery is how often runOne looks for a run waiting on its own pool.
const pollEvery = 2 * time.Millisecond

// runOne runs op once on l with plan armed, under the probe's watch.
func runOne(ctx context.Context, l *lane, op scenarios.Operation, fx scenarios.Fixture, plan faults.Plan, o runOpts) outcome {
	out := outcome{run: Run{Goroutine: l.g, Plan: plan}, holder: -1}
	if err := l.arm(plan); err != nil {
		out.run.Err = err
		out.cancel = func() {}
		return out
	}
	rctx, cancel := l.context(ctx)
	out.cancel = cancel
	waits0 := l.waited()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		var err error
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("panic: %v", v)
			}
			done <- err
		}()
		err = l.run(rctx, op, fx)
	}()
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	var tick <-chan time.Time
	if o.second {
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		tick = t.C
	}
	finish := func(err error) outcome {
		out.duration = time.Since(start)
		out.run.Err = err
		out.run.Fired = l.fired()
		for _, f := range out.run.Fired {
			if f.Rule.Fault.Kind != faults.KindLatency {
				out.run.Faulted = true // a latency only slows the run: a failure after it is not its doing
			}
		}
		return out
	}
	for {
		select {
		case err := <-done:
			return finish(err)
		case <-tick:
			if l.waited() == waits0 {
				continue
			}
			out.second = true
			out.waited = l.held(ctx)
			out.stack = runStacks()
		case <-deadline.C:
			out.run.TimedOut = true
			if o.atDeadline != nil {
				out.waited, out.stack, out.holder = o.atDeadline(ctx, l)
			}
		case <-ctx.Done():
		}
		cancel()
		grace := time.NewTimer(cancelGrace(o.timeout))
		select {
		case err := <-done:
			grace.Stop()
			return finish(err)
		case <-grace.C:
			out.hung, out.dump = true, runStacks()
			out.duration = time.Since(start)
			out.run.Err = fmt.Errorf("probes: the run did not return within %s of its cancellation", cancelGrace(o.timeout))
			return out
		}
	}
}

// runStacks returns the stacks of the goroutines running an operation for
// a probe, bounded in size.
func runStacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var keep []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sessionsafe/probes.(*lane).run(") {
			keep = append(keep, g)
		}
	}
	out := strings.Join(keep, "\n\n")
	if out == "" {
		return "(no goroutine of the probe's runs)"
	}
	if len(out) > 32<<10 {
		out = out[:32<<10] + "\n…"
	}
	return out
}
