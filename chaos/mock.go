package chaos

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// MockFinding is a broken invariant of one sampled matrix case.
type MockFinding struct {
	Worker  int
	OpIndex int
	Finding scenarios.Finding
}

// MockResult is the outcome of RunMock.
type MockResult struct {
	Operations  int64
	Errors      int64
	Faults      int64
	Duration    time.Duration
	Interrupted bool
	Findings    []MockFinding
}

// RunMock runs chaos on sqlmock: each worker draws random cases of the matrix of ops (the
// thread catalog, whose golden traces golden holds) from its stream (seed + worker) and runs
// them, all workers at once. Config
// fields used: Seed, Workers, Ops, Duration, Counters. Every finding is reported with its
// matrix case, which replays it alone.
func RunMock(ctx context.Context, cfg Config, ops []scenarios.Operation, golden fs.FS, replay func(scenarios.Case) string) (*MockResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	type runnerCases struct {
		r     *scenarios.Runner
		cases []scenarios.Case
	}
	scfg := scenarios.Config{Backend: scenarios.Sqlmock, Golden: golden, NoGoroutineCheck: true, Replay: replay, Timeout: cfg.OpTimeout}
	res := &MockResult{}
	start := time.Now()
	var mu sync.Mutex
	var stopped sync.WaitGroup
	var stop = make(chan struct{})
	var once sync.Once
	if cfg.Duration > 0 {
		t := time.AfterFunc(cfg.Duration, func() { once.Do(func() { close(stop) }) })
		defer t.Stop()
	}
	errs := make([]error, cfg.Workers)
	for w := 0; w < cfg.Workers; w++ {
		stopped.Add(1)
		go func() {
			defer stopped.Done()
			var runners []runnerCases
			defer func() {
				for _, rc := range runners {
					rc.r.Close()
				}
			}()
			for _, op := range ops {
				r, err := scenarios.NewRunner(ctx, scfg, op)
				if err != nil {
					errs[w] = fmt.Errorf("chaos: sqlmock: %s: %w", op.Name, err)
					return
				}
				runners = append(runners, runnerCases{r, r.Cases()})
			}
			seed := cfg.Seed + int64(w)
			n := cfg.opsOf(w)
			for i := cfg.From; n < 0 || i < n; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if ctx.Err() != nil {
					return
				}
				rng := opRand(seed, i, saltChoice)
				rc := runners[rng.IntN(len(runners))]
				if len(rc.cases) == 0 {
					continue
				}
				c := rc.cases[rng.IntN(len(rc.cases))]
				r := rc.r.RunCase(ctx, c)
				mu.Lock()
				res.Operations++
				if r.Err != nil {
					res.Errors++
				}
				if r.Fired {
					res.Faults++
				}
				if ctx.Err() == nil {
					for _, f := range r.Findings {
						res.Findings = append(res.Findings, MockFinding{Worker: w, OpIndex: i, Finding: f})
					}
				}
				mu.Unlock()
				if cfg.Counters != nil {
					cfg.Counters.Ops.Add(1)
					if r.Fired {
						cfg.Counters.Faults.Add(1)
					}
					if ctx.Err() == nil {
						cfg.Counters.Violations.Add(int64(len(r.Findings)))
					}
				}
			}
		}()
	}
	stopped.Wait()
	res.Duration = time.Since(start)
	res.Interrupted = ctx.Err() != nil
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	return res, nil
}
