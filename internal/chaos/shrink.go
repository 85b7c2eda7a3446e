package chaos

import (
	"context"
	"fmt"
	"io"
	"time"
)

// NewTarget gives a fresh database for one shrinking attempt, and its cleanup.
type NewTarget func(ctx context.Context) (Target, func(), error)

// Shrunk is the outcome of Shrink: the smallest configuration found that still fails.
type Shrunk struct {
	Config    Config
	Violation Violation // the violation the shrunk configuration produced
	Attempts  int
	Took      time.Duration
	Reduced   bool // false: nothing smaller failed; Config is the original
}

// Shrink looks for a smaller run that still breaks an invariant: one worker's stream instead
// of all (the worker whose operation failed), no server chaos, fewer faults (none, only the
// failing operation's, or a few fewer), fewer operations (cut after the failing one, start
// later). Every attempt runs on a fresh database from newTarget. It stops after budget or
// maxAttempts and returns the smallest failing configuration found.
func Shrink(ctx context.Context, cfg Config, res *Result, newTarget NewTarget, budget time.Duration, maxAttempts int, log io.Writer) (Shrunk, error) {
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
	deadline := start.Add(budget)
	try := func(c Config) (*Result, bool) {
		if out.Attempts >= maxAttempts || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, false
		}
		out.Attempts++
		tg, cleanup, err := newTarget(ctx)
		if err != nil {
			if log != nil {
				fmt.Fprintf(log, "shrink: attempt %d: no database: %v\n", out.Attempts, err)
			}
			return nil, false
		}
		defer cleanup()
		c.Counters, c.Log, c.NoGoroutineCheck = nil, nil, true
		r, err := Run(ctx, c, tg)
		failed := err == nil && !r.Interrupted && len(r.Violations) > 0
		if log != nil {
			fmt.Fprintf(log, "shrink: attempt %d: %s -> %s\n", out.Attempts, Describe(c), verdict(failed))
		}
		return r, failed
	}
	curRes := res
	accept := func(c Config, r *Result) {
		curRes = r
		out.Config, out.Reduced = c, true
		out.Violation = r.Violations[0]
		for _, v := range r.Violations {
			if v.OpIndex >= 0 {
				out.Violation = v
				break
			}
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
	out.Took = time.Since(start)
	return out, nil
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
