package scenarios

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// pgxPoolCloseWait bounds how long the runner waits for a case's pool to
// close: pgxpool.Pool.Close waits for every acquired connection, forever for
// one the code under test leaked.
const pgxPoolCloseWait = 2 * time.Second

// newPgxRunner is NewRunner for an operation with RunPgx (cfg checked).
func newPgxRunner(ctx context.Context, cfg Config, op Operation) (*Runner, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("scenarios: new runner for %s: parse DSN: %w", op.Name, err)
	}
	// The pool pings a connection idle for over a second before handing it
	// out: a step the recording may have and a case not. Never ping.
	pc.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pc.MinConns, pc.MinIdleConns = 0, 0
	r := &Runner{cfg: cfg, op: op, pxBase: pc}
	if cfg.Admin == nil {
		r.unavailable = append(r.unavailable, "server check left out: no Config.Admin and Config.AppName")
	}
	if err := r.recordPgx(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// openPgxPool opens a fresh pool for one run on l: each run starts, as the
// recording did, by connecting and preparing its statements (pgx caches
// them per connection, so a warm pool would change the trace).
func (r *Runner) openPgxPool(ctx context.Context, l *lane) error {
	px := l.px
	l.closePgxPool()
	if err := r.clearIfDirty(ctx, l); err != nil {
		return err
	}
	c := px.base.Copy()
	px.tracker = leakcheck.NewPgxTracker()
	px.tracker.Install(c)
	pool, err := pgxpool.NewWithConfig(ctx, c)
	if err != nil {
		return fmt.Errorf("open pgx pool: %w", err)
	}
	px.pool = pool
	px.inj.Reset()
	return nil
}

// closePgxPool closes the lane's pool, waiting pgxPoolCloseWait at most: a
// pool with a leaked connection never closes, and is left behind (its
// Close still waiting).
func (l *lane) closePgxPool() {
	pool := l.px.pool
	if pool == nil {
		return
	}
	l.px.pool = nil
	done := make(chan struct{})
	go func() {
		defer close(done)
		pool.Close()
	}()
	t := time.NewTimer(pgxPoolCloseWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// recordPgx runs the operation once with no fault on a fresh pool.
func (r *Runner) recordPgx(ctx context.Context) error {
	l := r.takeLane()
	defer r.putLane(l)
	fx, err := r.op.Setup(ctx, r.cfg.DB)
	if err != nil {
		return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
	}
	if r.op.State != nil {
		if r.before, err = r.op.State(ctx, r.cfg.DB, fx); err != nil {
			return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
		}
	}
	if err := r.openPgxPool(ctx, l); err != nil {
		return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
	}
	rctx, cancel := l.px.inj.Context(withPgxTracker(ctx, l.px.tracker))
	err = r.op.RunPgx(rctx, l.px.pool, fx)
	trace := l.px.inj.Trace() // as RunPgx left it (see record)
	cancel()
	l.closePgxPool()
	if err != nil {
		r.broken, r.clean, l.dirty = err, trace, true
		return nil
	}
	if len(trace) == 0 {
		return fmt.Errorf("scenarios: %s: record: %w: the clean run recorded no step on the *pgxpool.Pool it was given: "+
			"RunPgx must do its database work through that pool", r.op.Name, ErrConfig)
	}
	r.clean = trace
	if r.op.State != nil {
		if r.after, err = r.op.State(ctx, r.cfg.DB, fx); err != nil {
			return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
		}
		if r.after == r.before {
			return fmt.Errorf("scenarios: %s: %w: the state read back did not change (State must show what RunPgx writes):\n%s",
				r.op.Name, ErrConfig, r.after)
		}
	}
	return nil
}

// pgxFaultsAt returns the faults tried at a step of a pgx operation.
func (r *Runner) pgxFaultsAt(k faults.StepKind, p place) []faults.Fault {
	if r.cfg.Disconnect {
		return []faults.Fault{{Kind: faults.KindCancel}}
	}
	if r.cfg.Faults != nil {
		return r.cfg.Faults(k)
	}
	var out []faults.Fault
	for _, f := range faults.ApplicablePgx(k) {
		if faultPossible(f, k, p) {
			out = append(out, f)
		}
	}
	return out
}

// pgxOutcomeOf says what a correct pgx operation does with the case's
// fault: pgx and pgxpool retry nothing by themselves.
func pgxOutcomeOf(c Case, f faults.Fault, retries func(error) bool, disconnect bool) outcome {
	switch {
	case c.Clean(), f.Kind == faults.KindLatency:
		return outAbsorbed
	case disconnect:
		return outSurfaces
	case rollbackMayBeSilent(c.StepKind):
		return outEither
	case retries != nil && retries(faultError(f)):
		return outRetried
	}
	return outSurfaces
}

// runPgxCase is RunCase on lane l for an operation with RunPgx.
func (r *Runner) runPgxCase(ctx context.Context, l *lane, c Case) (res Result) {
	start := time.Now()
	res = Result{Case: c}
	replay := ""
	if r.cfg.Replay != nil {
		replay = r.cfg.Replay(c)
	}
	find := func(inv Invariant, trace faults.Trace, format string, args ...any) {
		res.Findings = append(res.Findings, Finding{Case: c, Invariant: inv, Message: fmt.Sprintf(format, args...),
			Trace: trace.String(), Replay: replay})
	}
	defer func() { res.Duration = time.Since(start) }()
	mark := phaseClock()

	var plan faults.Plan
	fault := c.Fault
	if !c.Clean() {
		if err := fault.Validate(); err != nil {
			find(InvSetup, nil, "%v", err)
			return res
		}
		plan = faults.Plan{Rules: []faults.Rule{{Step: c.Step, Fault: fault}}}
	}
	fx, err := r.op.Setup(ctx, r.cfg.DB)
	if err != nil {
		find(InvSetup, nil, "setup: %v", err)
		return res
	}
	release, err := r.claimFixture(l, fx)
	if err != nil {
		find(InvSetup, nil, "%v", err)
		return res
	}
	defer release()
	var at place
	if !c.Clean() {
		at = placeOf(r.clean, c.Step)
	}
	out := pgxOutcomeOf(c, fault, r.op.Retries, r.cfg.Disconnect)
	res.Phases.Setup = mark()
	err = r.openPgxPool(ctx, l)
	res.Phases.Connect = mark()
	if err != nil {
		find(InvSetup, nil, "%v", err)
		return res
	}
	pool, inj, tracker := l.px.pool, l.px.inj, l.px.tracker
	defer func() {
		if len(res.Findings) > 0 {
			l.dirty = true
		}
		l.closePgxPool()
	}()
	if err := inj.Arm(plan); err != nil {
		find(InvSetup, nil, "%v", err)
		return res
	}

	o, cancel := r.runPgx(ctx, pool, inj, tracker, fx)
	defer cancel()
	mark()
	res.RunTime = o.runTime
	trace := inj.Trace()
	fired := inj.Fired()
	res.Fired = len(fired) > 0
	if o.panicked != nil {
		res.Err = fmt.Errorf("panic: %v", o.panicked)
	} else {
		res.Err = o.err
	}
	if o.hung {
		find(InvDeadline, trace, "the operation did not return within %s (+%s grace); goroutines:\n%s", r.cfg.Timeout, r.hangGrace(), o.dump)
		return res
	}
	checkFired(find, c, trace, fired)
	// The request ran on the caller's context: pgx gave up on it when the
	// cancel fault cancelled that context (faults.PgxInjector).
	if len(fired) > 0 && fired[0].Unheeded != nil {
		find(InvContext, trace, "%v", fired[0].Unheeded)
	}
	switch {
	case r.cfg.Disconnect:
	case c.Clean() && res.Err != nil:
		find(InvErrorSurfaced, trace, "got error %v with no fault armed; want success", res.Err)
	case out == outSurfaces && res.Fired && res.Err == nil:
		find(InvErrorSurfaced, trace, "got success (nil error); want the injected failure to reach the caller: %s", firedLine(fired))
	case out == outSurfaces && o.panicked != nil:
		find(InvErrorSurfaced, trace, "the operation panicked (%v) for a fault that is an error", o.panicked)
	case out == outSurfaces && res.Fired && errors.Is(res.Err, pgx.ErrTxCommitRollback):
		find(InvErrorSurfaced, trace, "got %q; want the injected failure (%s): the code went on after an error in its transaction and committed it",
			res.Err, firedLine(fired))
	case (out == outRetried || out == outAbsorbed) && res.Fired && res.Err != nil:
		find(InvRetried, trace, "got error %v; want success: the fault (%s) is %s", res.Err, firedLine(fired), out)
	}

	type stateRead struct {
		got string
		err error
	}
	stateCh := make(chan stateRead, 1)
	if r.op.State != nil {
		go func() {
			got, err := r.op.State(ctx, r.cfg.DB, fx)
			stateCh <- stateRead{got, err}
		}()
	} else {
		close(stateCh)
	}
	opts := []leakcheck.Option{leakcheck.WithPgxPool(pool, tracker), leakcheck.WithTimeout(r.cfg.CheckTimeout)}
	if r.cfg.Admin != nil {
		opts = append(opts, leakcheck.WithServer(r.cfg.Admin, l.app))
	}
	leakErr := leakcheck.Find(ctx, opts...)
	if st, ok := <-stateCh; ok {
		r.checkState(find, trace, fault, at, res.Err, st.got, st.err)
	}
	if !r.cfg.NoGoroutineCheck && leakErr == nil {
		// (a leaked connection keeps pgx goroutines of its own: the pool
		// finding says it all)
		leakErr = leakcheck.Find(ctx, leakcheck.WithScope(o.scope), leakcheck.WithTimeout(r.cfg.CheckTimeout))
	}
	reportLeaks(find, trace, leakErr)
	res.Phases.Checks = mark()
	return res
}

// runPgx runs RunPgx once under the case's deadline, as run does.
func (r *Runner) runPgx(ctx context.Context, pool *pgxpool.Pool, inj *faults.PgxInjector, tr *leakcheck.PgxTracker, fx Fixture) (runOutcome, context.CancelFunc) {
	ctx, cancelT := context.WithTimeout(ctx, r.cfg.Timeout)
	rctx, cancelR := inj.Context(withPgxTracker(ctx, tr))
	cancel := func() { cancelR(); cancelT() }
	return r.runScoped(ctx, func() error { return r.op.RunPgx(rctx, pool, fx) }), cancel
}

// pgxTrackerKey is the context key of the case's leakcheck.PgxTracker.
type pgxTrackerKey struct{}

func withPgxTracker(ctx context.Context, t *leakcheck.PgxTracker) context.Context {
	return context.WithValue(ctx, pgxTrackerKey{}, t)
}

// checkPgxConfig is checkConfig's part for RunPgx.
func checkPgxConfig(cfg Config) []string {
	var probs []string
	switch {
	case cfg.Backend == Sqlmock:
		probs = append(probs, "RunPgx does not run on sqlmock (go-sqlmock mocks database/sql, and pgx code does not go through it): run pgx operations on Postgres")
	case cfg.DSN == "":
		probs = append(probs, "RunPgx needs Config.DSN (the runner opens a pgxpool from it; Config.Connector is for database/sql)")
	}
	return probs
}
