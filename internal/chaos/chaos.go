package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// ErrConfig is wrapped by the error of a configuration that cannot run.
var ErrConfig = errors.New("chaos: bad config")

// Run runs a chaos run on the Postgres database of target. The error is for a run that
// could not be set up; what broke is in Result.Violations. When ctx ends (Ctrl-C) the
// workers stop, the run is marked interrupted and the quiescence checks are skipped; every
// pool the run opened is closed before Run returns.
func Run(ctx context.Context, cfg Config, target Target) (*Result, error) {
	cfg.defaults()
	if cfg.Workers < 1 {
		return nil, fmt.Errorf("%w: workers %d, want at least 1", ErrConfig, cfg.Workers)
	}
	if cfg.Ops == 0 && cfg.Duration == 0 {
		return nil, fmt.Errorf("%w: neither ops nor duration set: the run would never end", ErrConfig)
	}
	if target.DSN == "" {
		return nil, fmt.Errorf("%w: no database DSN", ErrConfig)
	}
	if (cfg.RestartEvery > 0 || cfg.PauseEvery > 0) && target.Server == nil {
		return nil, fmt.Errorf("%w: restart or pause chaos needs a server this run provisioned", ErrConfig)
	}
	if cfg.TerminateEvery > 0 && target.Admin == nil {
		return nil, fmt.Errorf("%w: terminate chaos needs an admin pool", ErrConfig)
	}
	baseline := goleak.IgnoreCurrent()
	rs := &runState{target: target}
	pc, err := pgx.ParseConfig(target.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: parse dsn: %v", ErrConfig, err)
	}
	pc.RuntimeParams["application_name"] = appName(target.AppName, 999) + "-verify"
	cleanDB := sql.OpenDB(stdlib.GetConnector(*pc))
	defer cleanDB.Close()
	rs.clean = handlers.New(cleanDB)
	res := &Result{Seed: cfg.Seed, Workers: cfg.Workers, FaultOps: map[int][]int{}, WorkerOps: map[int]int{}}

	workers := make([]*worker, 0, cfg.Workers)
	defer func() {
		for _, w := range workers {
			w.db.Close()
		}
	}()
	for i := 0; i < cfg.Workers; i++ {
		w, err := newWorker(i, &cfg, rs)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}

	start := time.Now()
	var timer *time.Timer
	if cfg.Duration > 0 {
		timer = time.AfterFunc(cfg.Duration, func() { rs.stopped.Store(true) })
	}
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaosWG sync.WaitGroup
	var chaosErr error
	if cfg.TerminateEvery > 0 || cfg.RestartEvery > 0 || cfg.PauseEvery > 0 {
		chaosWG.Add(1)
		go func() {
			defer chaosWG.Done()
			chaosErr = serverChaos(chaosCtx, &cfg, rs, workers, res)
		}()
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	wg.Wait()
	if timer != nil {
		timer.Stop()
	}
	stopChaos()
	chaosWG.Wait()
	res.Duration = time.Since(start)
	res.Interrupted = ctx.Err() != nil

	for _, w := range workers {
		res.Operations += w.ops
		res.WorkerOps[w.id] = w.next
		res.Errors += w.errs
		res.Faults += w.inj.faults
		res.Violations = append(res.Violations, w.violations...)
		if len(w.faultOps) > 0 {
			res.FaultOps[w.id] = w.faultOps
		}
	}
	if chaosErr != nil && !res.Interrupted {
		res.Violations = append(res.Violations, Violation{Invariant: "server-chaos", Worker: -1, OpIndex: -1,
			Message: "server chaos failed: " + chaosErr.Error()})
	}
	if res.Interrupted || cfg.NoChecks {
		return res, nil
	}
	if err := quiesce(ctx, &cfg, rs, workers, res); err != nil {
		return res, err
	}
	for _, w := range workers {
		w.db.Close()
	}
	workers = nil
	cleanDB.Close()
	if !cfg.NoGoroutineCheck {
		if err := leakcheck.FindGoroutines(ctx, append([]goleak.Option{baseline}, cfg.GoroutineOptions...)...); err != nil {
			res.Violations = append(res.Violations, Violation{Invariant: "goroutines", Worker: -1, OpIndex: -1,
				Message: "goroutines outlived the run", Attribution: err.Error()})
		}
	}
	return res, nil
}

// quiesce runs the checks on the settled system: every pool, every server session, the
// long-transaction findings, and the ledger of every worker against the database.
func quiesce(ctx context.Context, cfg *Config, rs *runState, workers []*worker, res *Result) error {
	svc := rs.clean
	for _, w := range workers {
		if len(w.violations) > 0 {
			continue // its state is already broken; its first finding says why
		}
		add := func(inv, msg, detail string) {
			v := Violation{Invariant: inv, Worker: w.id, StreamSeed: w.seed, OpIndex: -1, Message: msg, Attribution: detail}
			res.Violations = append(res.Violations, v)
			if cfg.Counters != nil {
				cfg.Counters.Violations.Add(1)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, cfg.CheckTimeout+5*time.Second)
		if err := leakcheck.FindPool(cctx, w.db, leakcheck.WithTimeout(cfg.CheckTimeout), leakcheck.WithTracker(w.tracker)); err != nil {
			msg, d := findings(err)
			add("pool", msg, d)
		}
		if rs.target.Admin != nil {
			if err := leakcheck.FindServer(cctx, rs.target.Admin, w.appName, leakcheck.WithTimeout(cfg.CheckTimeout)); err != nil {
				msg, d := findings(err)
				add("server", msg, d)
			}
		}
		if err := leakcheck.FindLongTransactions(cctx, w.tracker); err != nil {
			msg, d := findings(err)
			add("long-transaction", msg, d)
		}
		problems, err := w.ledger.verify(cctx, svc, w.user)
		if err == nil {
			var more []string
			if more, err = w.ledger.checkCreates(cctx, svc, w.user); err == nil {
				problems = append(problems, more...)
			}
		}
		cancel()
		if err != nil {
			add("ledger", "the ledger could not be read back: "+err.Error(), "")
			continue
		}
		res.Acked += w.ledger.acked
		res.Ambiguous += w.ledger.ambiguous
		for _, p := range problems {
			add("ledger", p, "")
		}
	}
	return nil
}

// serverChaos terminates, restarts and pauses on the configured periods until ctx ends.
func serverChaos(ctx context.Context, cfg *Config, rs *runState, workers []*worker, res *Result) error {
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x452821e638d01377))
	tick := func(d time.Duration) <-chan time.Time {
		if d <= 0 {
			return nil
		}
		return time.NewTicker(d).C
	}
	term, restart, pause := tick(cfg.TerminateEvery), tick(cfg.RestartEvery), tick(cfg.PauseEvery)
	var srv *faults.Server
	if rs.target.Admin != nil {
		srv = faults.NewServer(rs.target.Admin)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-term:
			w := workers[rng.IntN(len(workers))]
			rs.epoch.Add(1)
			n, err := srv.TerminateBackends(ctx, w.appName)
			rs.epoch.Add(1)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("terminate backends of %s: %w", w.appName, err)
			}
			res.Terminated += int64(n)
		case <-restart:
			rs.epoch.Add(1)
			err := rs.target.Server.Restart(ctx)
			rs.epoch.Add(1)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("restart server: %w", err)
			}
			res.Restarts++
		case <-pause:
			rs.epoch.Add(1)
			if err := rs.target.Server.Pause(ctx); err != nil && ctx.Err() == nil {
				return fmt.Errorf("pause server: %w", err)
			}
			// A deliberate stall: the server answers nothing for a moment.
			t := time.NewTimer(time.Duration(100+rng.IntN(200)) * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			err := rs.target.Server.Resume(context.WithoutCancel(ctx))
			rs.epoch.Add(1)
			if err != nil {
				return fmt.Errorf("resume server: %w", err)
			}
			res.Pauses++
		}
	}
}
