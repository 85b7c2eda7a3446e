package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// NewTarget gives a fresh database for one shrinking attempt, and its cleanup.
type NewTarget func(ctx context.Context) (Target, func(), error)

// Confirmations is how many times Shrink reruns the smallest failing configuration it found
// before it accepts it: every rerun must fail with the same invariant.
const Confirmations = 3

// ErrNotReproduced is what Shrunk.Err wraps when the smallest failing configuration did not
// fail on every rerun: its failure came from something else running then (load left over
// from the run, a neighbour's connections), not from the configuration.
var ErrNotReproduced = errors.New("chaos: could not shrink: did not reproduce alone")

// Shrunk is the outcome of Shrink: the smallest configuration found that still fails.
type Shrunk struct {
	Config    Config
	Violation Violation // the violation the shrunk configuration produced: of the same invariant as the one shrunk
	Attempts  int
	Took      time.Duration
	Reduced   bool // false: nothing smaller failed (or it did not reproduce); Config is the original
	// Err, when set, says why Config is the original although a smaller configuration
	// failed while shrinking: it wraps ErrNotReproduced, naming the configuration and how
	// many of its reruns passed.
	Err error
}

// Shrink looks for a smaller run that still breaks an invariant: one worker's stream instead
// of all (the worker whose operation failed), no server chaos, fewer faults (none, only the
// failing operation's, or a few fewer), fewer operations (cut after the failing one, start
// later). Every attempt runs on a fresh database from newTarget. It stops after budget or
// maxAttempts and returns the smallest failing configuration found — once it has failed
// again, with the same invariant, on each of Confirmations reruns of its own (these are not
// bounded by budget or maxAttempts). One that passes a rerun is a failure the configuration
// does not cause: Shrunk is then the original run's, with Err wrapping ErrNotReproduced.
func Shrink(ctx context.Context, wl *Workload, cfg Config, res *Result, newTarget NewTarget, budget time.Duration, maxAttempts int, log io.Writer) (Shrunk, error) {
	return shrink(ctx, cfg, res, newTarget, budget, maxAttempts, log, func(ctx context.Context, cfg Config, target Target) (*Result, error) {
		return Run(ctx, wl, cfg, target)
	})
}

// runFunc is Run of a workload, or a test's stand-in for it.
type runFunc func(ctx context.Context, cfg Config, target Target) (*Result, error)

func shrink(ctx context.Context, cfg Config, res *Result, newTarget NewTarget, budget time.Duration, maxAttempts int, log io.Writer, run runFunc) (Shrunk, error) {
	start := time.Now()
	out := Shrunk{Config: cfg}
	if len(res.Violations) == 0 {
		return out, fmt.Errorf("%w: shrink: the run has no violation", ErrConfig)
	}
	out.Violation = res.Violations[0]
	for _, v := range res.Violations {
		if v.OpIndex >= 0 {
			out.Violation = v
			break
		}
	}
	want := out.Violation.Invariant
	deadline := start.Add(budget)
	attempt := func(c Config, what string) (*Result, bool) {
		tg, cleanup, err := newTarget(ctx)
		if err != nil {
			if log != nil {
				fmt.Fprintf(log, "shrink: %s: no database: %v\n", what, err)
			}
			return nil, false
		}
		defer cleanup()
		c.Counters, c.Log, c.NoGoroutineCheck = nil, nil, true
		r, err := run(ctx, c, tg)
		// It fails the same way, or it is not the violation being shrunk: a run that
		// breaks another invariant (a deadline on a loaded machine) is no smaller case.
		failed := err == nil && !r.Interrupted && hasInvariant(r, want)
		if log != nil {
			fmt.Fprintf(log, "shrink: %s: %s -> %s\n", what, Describe(c), verdict(failed))
		}
		return r, failed
	}
	try := func(c Config) (*Result, bool) {
		if out.Attempts >= maxAttempts || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, false
		}
		out.Attempts++
		return attempt(c, fmt.Sprintf("attempt %d", out.Attempts))
	}
	curRes := res
	accept := func(c Config, r *Result) {
		curRes = r
		out.Config, out.Reduced = c, true
		for _, v := range r.Violations {
			if v.Invariant == want {
				out.Violation = v
				if v.OpIndex >= 0 {
					break
				}
			}
		}
	}
	original := out
	// confirm reruns the smallest failing configuration alone: it is accepted only if every
	// rerun fails with the same invariant; else the original run is what is reported.
	confirm := func() {
		if !out.Reduced {
			return
		}
		passed := 0
		for i := 1; i <= Confirmations && ctx.Err() == nil; i++ {
			_, failed := attempt(out.Config, fmt.Sprintf("rerun %d of %d", i, Confirmations))
			if !failed {
				passed++
			}
		}
		if passed == 0 && ctx.Err() == nil {
			return
		}
		smallest := out.Config
		attempts := out.Attempts
		out = original
		out.Attempts = attempts
		if ctx.Err() != nil {
			out.Err = fmt.Errorf("%w: %s was not rerun to the end: %w", ErrNotReproduced, Describe(smallest), ctx.Err())
		} else {
			out.Err = fmt.Errorf("%w: %s failed while shrinking, then passed %d of %d reruns", ErrNotReproduced, Describe(smallest), passed, Confirmations)
		}
		if log != nil {
			fmt.Fprintf(log, "shrink: %v\n", out.Err)
		}
	}
	cur := cfg
	cur.Duration = 0
	if cur.Ops == 0 {
		cur.Ops = int(res.Operations)
	}
	noChaos := func(c Config) Config {
		c.TerminateEvery, c.RestartEvery, c.PauseEvery = 0, 0, 0
		return c
	}

	// 1. One worker's stream, cut after the failing operation, no server chaos.
	v := out.Violation
	if v.Worker >= 0 {
		c := noChaos(cur)
		c.Seed, c.Workers = v.StreamSeed, 1
		c.Ops = res.WorkerOps[v.Worker]
		if v.OpIndex >= 0 {
			c.Ops = v.OpIndex + 1
		}
		if r, ok := try(c); ok {
			accept(c, r)
			cur = c
		}
	}
	if !out.Reduced {
		// Fewer workers, each keeping its stream (worker i's seed is seed+i).
		for w := cur.Workers / 2; w >= 1; w /= 2 {
			c := noChaos(cur)
			c.Ops = cur.Ops * w / cur.Workers
			c.Workers = w
			r, ok := try(c)
			if !ok {
				break
			}
			accept(c, r)
			cur = c
		}
	}
	if out.Violation.Worker < 0 || cur.Workers != 1 {
		confirm()
		out.Took = time.Since(start)
		return out, nil
	}

	// 2. Fewer faults: none at all, then only the failing operation's, then the ones that
	// fired up to it, dropped one at a time.
	if cur.FaultRate > 0 {
		c := cur
		c.FaultRate, c.FaultsAt = 0, nil
		if r, ok := try(c); ok {
			accept(c, r)
			cur = c
		} else if op := out.Violation.OpIndex; op >= 0 {
			c := cur
			c.FaultsAt = []int{op}
			if r, ok := try(c); ok {
				accept(c, r)
				cur = c
			} else if base := last(curRes.faultOpsOf(out.Violation.Worker), op); cur.FaultsAt == nil && len(base) > 1 {
				for i := 0; i < len(base) && len(base) > 1; {
					c := cur
					c.FaultsAt = append(append([]int{}, base[:i]...), base[i+1:]...)
					r, ok := try(c)
					if ok {
						accept(c, r)
						cur = c
						base = c.FaultsAt
						continue
					}
					if r == nil {
						break
					}
					i++
				}
			}
		}
	}

	// 3. Fewer operations: cut after the failing one, then start as late as still fails.
	if op := out.Violation.OpIndex; op >= 0 && op+1 < cur.Ops {
		c := cur
		c.Ops = op + 1
		if r, ok := try(c); ok {
			accept(c, r)
			cur = c
		}
	}
	lo, hi := cur.From, out.Violation.OpIndex
	for lo < hi {
		mid := (lo + hi + 1) / 2
		c := cur
		c.From = mid
		r, ok := try(c)
		if !ok {
			if r == nil && (out.Attempts >= maxAttempts || time.Now().After(deadline)) {
				break
			}
			hi = mid - 1
			continue
		}
		accept(c, r)
		cur = c
		lo = mid
		if out.Violation.OpIndex >= 0 && out.Violation.OpIndex+1 < cur.Ops {
			cur.Ops = out.Violation.OpIndex + 1
			out.Config = cur
		}
	}
	confirm()
	out.Took = time.Since(start)
	return out, nil
}

// hasInvariant reports whether r has a violation of invariant inv.
func hasInvariant(r *Result, inv string) bool {
	if r == nil {
		return false
	}
	for _, v := range r.Violations {
		if v.Invariant == inv {
			return true
		}
	}
	return false
}

// last keeps the indices up to and including upTo.
func last(ops []int, upTo int) []int {
	var out []int
	for _, o := range ops {
		if o <= upTo {
			out = append(out, o)
		}
	}
	return out
}

func verdict(failed bool) string {
	if failed {
		return "still fails"
	}
	return "passes"
}

// Describe prints the parts of a configuration that shrinking changes.
func Describe(c Config) string {
	s := fmt.Sprintf("seed %d, %d worker(s), ", c.Seed, c.Workers)
	if c.Ops > 0 {
		s += fmt.Sprintf("%d op(s)", c.Ops)
	} else {
		s += "for " + c.Duration.String()
	}
	if c.From > 0 {
		s += fmt.Sprintf(" from %d", c.From)
	}
	switch {
	case c.FaultRate == 0:
		s += ", no faults"
	case c.FaultsAt != nil:
		s += fmt.Sprintf(", faults at %v", c.FaultsAt)
	default:
		s += fmt.Sprintf(", fault rate %g", c.FaultRate)
	}
	return s
}
