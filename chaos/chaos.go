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
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// ErrConfig is wrapped by the error of a configuration that cannot run.
var ErrConfig = errors.New("chaos: bad config")

// Run runs workload wl under chaos on the Postgres database of target. The error is for a
// run that could not be set up; what broke is in Result.Violations. When ctx ends (Ctrl-C)
// the workers stop, the run is marked interrupted and the quiescence checks are skipped;
// every pool the run opened is closed before Run returns.
func Run(ctx context.Context, wl *Workload, cfg Config, target Target) (*Result, error) {
	if err := wl.validate(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if wl.Pgx && cfg.Panics {
		return nil, fmt.Errorf("%w: panics are injected in database/sql runs only (the pgx injector works on the wire)", ErrConfig)
	}
	cfg.defaults()
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
	rs := &runState{target: target, stopCh: make(chan struct{})}
	pc, err := pgx.ParseConfig(target.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: parse dsn: %v", ErrConfig, err)
	}
	pc.RuntimeParams["application_name"] = appName(target.AppName, 999) + "-verify"
	cleanDB := sql.OpenDB(stdlib.GetConnector(*pc))
	defer cleanDB.Close()
	cleanDB.SetMaxOpenConns(cleanConns)
	rs.clean = cleanDB
	if !cfg.NoChecks {
		if rs.fresh, err = freshSession(ctx, cleanDB); err != nil {
			return nil, err
		}
	}
	n, err := connShare(ctx, target.Admin, cfg.Workers)
	if err != nil {
		return nil, err
	}
	if cfg.connShare > 0 {
		n = cfg.connShare
	}
	if n > 0 {
		rs.slots = make(chan struct{}, n)
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "chaos: %d workers share %d connections of the server: an operation waiting for one is queued, its deadline stopped\n", cfg.Workers, n)
		}
	}
	res := &Result{Seed: cfg.Seed, Workers: cfg.Workers, FaultOps: map[int][]int{}, WorkerOps: map[int]int{}}

	workers := make([]*worker, 0, cfg.Workers)
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()
	for i := 0; i < cfg.Workers; i++ {
		w, err := newWorker(ctx, i, &cfg, wl, rs)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
		if err := w.setup(ctx); err != nil {
			return nil, err
		}
	}

	start := time.Now()
	var timers []*time.Timer
	if cfg.Duration > 0 {
		timers = append(timers, time.AfterFunc(cfg.Duration, func() {
			rs.durationDone.Store(true)
			rs.endIfDone(&cfg)
		}))
		if cfg.serverChaos() {
			// Server chaos that cannot act (a restart that keeps failing) must not keep
			// the run going for ever.
			longest := max(cfg.TerminateEvery, cfg.RestartEvery, cfg.PauseEvery)
			timers = append(timers, time.AfterFunc(cfg.Duration+max(2*time.Minute, 10*longest), func() {
				rs.stop()
			}))
		}
	}
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaosWG sync.WaitGroup
	if cfg.serverChaos() {
		chaosWG.Add(1)
		go func() {
			defer chaosWG.Done()
			serverChaos(chaosCtx, &cfg, rs, workers, res)
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
	for _, t := range timers {
		t.Stop()
	}
	stopChaos()
	chaosWG.Wait()
	res.Duration = time.Since(start)
	res.Interrupted = ctx.Err() != nil

	for _, w := range workers {
		res.Operations += w.ops
		res.WorkerOps[w.id] = w.next
		res.Errors += w.errs
		res.Queued += w.queued
		res.Faults += w.faults
		res.Violations = append(res.Violations, w.violations...)
		if len(w.faultOps) > 0 {
			res.FaultOps[w.id] = w.faultOps
		}
	}
	if res.Interrupted || cfg.NoChecks {
		return res, nil
	}
	if cfg.serverChaos() {
		// The last action may have left the server restarting: the checks need it back.
		if err := waitReady(ctx, cleanDB, time.Minute); err != nil {
			return res, err
		}
		if rs.target.Admin != nil {
			if err := waitReady(ctx, rs.target.Admin, time.Minute); err != nil {
				return res, err
			}
		}
	}
	quiesce(ctx, &cfg, workers, res)
	for _, w := range workers {
		w.close()
	}
	workers = nil
	cleanDB.Close()
	if !cfg.NoGoroutineCheck {
		// goleak polls for a moment of its own; on a loaded machine the run's goroutines
		// may take longer to end: go on polling for CheckTimeout.
		opts := append([]goleak.Option{baseline}, cfg.GoroutineOptions...)
		settle := time.Now().Add(cfg.CheckTimeout)
		err := leakcheck.FindGoroutines(ctx, opts...)
		for err != nil && time.Now().Before(settle) && ctx.Err() == nil {
			err = leakcheck.FindGoroutines(ctx, opts...)
		}
		if err != nil {
			res.Violations = append(res.Violations, Violation{Invariant: "goroutines", Worker: -1, OpIndex: -1,
				Message: "goroutines outlived the run", Attribution: err.Error()})
		}
	}
	return res, nil
}

// cleanConns bounds the pool that reads the ledgers back.
const cleanConns = 4

// connReserve is what a run leaves of the server's connections to its own checks: the
// ledger pool (cleanConns) and the admin pool's server checks.
const connReserve = cleanConns + 6

// connShare returns how many connections the workers of a run may hold at once, or 0 when
// they may all hold their pool's two: the server's max_connections, less its superuser
// reserve, the client sessions already open and connReserve. Past it the server answers
// "too many clients" (53300) — a failure of the run's own making, not of the code under
// test — so workers beyond it queue for a connection instead. Without an admin pool
// there is nothing to ask: no limit.
func connShare(ctx context.Context, admin *sql.DB, workers int) (int, error) {
	if admin == nil {
		return 0, nil
	}
	var free int
	err := admin.QueryRowContext(ctx, `SELECT current_setting('max_connections')::int
		- current_setting('superuser_reserved_connections')::int
		- (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int`).Scan(&free)
	if err != nil {
		return 0, fmt.Errorf("chaos: read the server's connection limit: %w", err)
	}
	free -= connReserve
	if 2*workers <= free {
		return 0, nil
	}
	return max(free, 1), nil
}

// quiesce runs the checks on the settled system: every pool, every server session, the
// long-transaction findings, and the ledger and invariants of every worker against the
// database.
func quiesce(ctx context.Context, cfg *Config, workers []*worker, res *Result) {
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
		opts := []leakcheck.Option{leakcheck.WithTimeout(cfg.CheckTimeout)}
		if w.pool != nil {
			opts = append(opts, leakcheck.WithPgxPool(w.pool, w.pgxTracker))
		} else {
			opts = append(opts, leakcheck.WithDB(w.db), leakcheck.WithTracker(w.tracker))
		}
		if w.run.target.Admin != nil {
			opts = append(opts, leakcheck.WithServer(w.run.target.Admin, w.appName))
		}
		if err := leakcheck.Find(cctx, opts...); err != nil {
			inv, msg, d := findings(err)
			add(inv, msg, d)
		}
		problems, err := w.verify(cctx)
		cancel()
		if err != nil {
			add("ledger", "the ledger could not be read back: "+err.Error(), "")
			continue
		}
		res.Acked += w.ledger.acked
		res.Ambiguous += w.ledger.ambiguous
		for _, p := range problems {
			add(p.invariant, p.message, "")
		}
	}
}

// serverChaos terminates, restarts and pauses on the configured periods until ctx ends.
// Each action runs to its end even when ctx ends meanwhile (a restart cut short would leave
// the server down); an action that fails (the admin pool reconnecting after a restart) is
// logged and the next one tried.
func serverChaos(ctx context.Context, cfg *Config, rs *runState, workers []*worker, res *Result) {
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x452821e638d01377))
	var tickers []*time.Ticker
	defer func() {
		for _, t := range tickers {
			t.Stop()
		}
	}()
	tick := func(d time.Duration) <-chan time.Time {
		if d <= 0 {
			return nil
		}
		t := time.NewTicker(d)
		tickers = append(tickers, t)
		return t.C
	}
	term, restart, pause := tick(cfg.TerminateEvery), tick(cfg.RestartEvery), tick(cfg.PauseEvery)
	var srv *faults.Server
	if rs.target.Admin != nil {
		srv = faults.NewServer(rs.target.Admin)
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "server chaos: "+format+"\n", args...)
		}
	}
	act := func(name string, fn func(ctx context.Context) error) bool {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		rs.epoch.Add(1) // odd: an action is under way
		err := fn(actx)
		rs.epoch.Add(1)
		if err != nil {
			logf("%s: %v", name, err)
			return false
		}
		logf("%s", name)
		return true
	}
	acted := func() {
		if (cfg.TerminateEvery == 0 || res.Terminated > 0) && (cfg.RestartEvery == 0 || res.Restarts > 0) && (cfg.PauseEvery == 0 || res.Pauses > 0) {
			rs.chaosActed.Store(true)
			rs.endIfDone(cfg)
		}
	}
	for {
		acted()
		select {
		case <-ctx.Done():
			return
		case <-term:
			w := workers[rng.IntN(len(workers))]
			act("terminate the backends of "+w.appName, func(ctx context.Context) error {
				n, err := srv.TerminateBackends(ctx, w.appName)
				res.Terminated += int64(n)
				return err
			})
		case <-restart:
			if act("restart", rs.target.Server.Restart) {
				res.Restarts++
			}
		case <-pause:
			stall := time.Duration(100+rng.IntN(200)) * time.Millisecond
			if act("pause for "+stall.String(), func(ctx context.Context) error {
				if err := rs.target.Server.Pause(ctx); err != nil {
					return err
				}
				// A deliberate stall: the server answers nothing for a moment.
				t := time.NewTimer(stall)
				<-t.C
				return rs.target.Server.Resume(ctx)
			}) {
				res.Pauses++
			}
		}
	}
}

// waitReady polls until the server answers on db again (after a restart), or the deadline.
func waitReady(ctx context.Context, db *sql.DB, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.PingContext(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: the server did not answer again within %s: %w", within, err)
		case <-t.C:
		}
	}
}
