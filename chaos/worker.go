package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// opRand returns the generator of operation i of the stream seeded by seed; salt separates
// the choices of the operation from its faults.
func opRand(seed int64, i int, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed)^salt, uint64(i)))
}

const (
	saltChoice = 0x243f6a8885a308d3
	saltFaults = 0x13198a2e03707344
)

// worker runs one stream of operations on its own pool.
type worker struct {
	id      int
	seed    int64
	cfg     *Config
	wl      *Workload
	run     *runState
	appName string
	pub     Worker

	db         *sql.DB       // database/sql workloads
	pool       *pgxpool.Pool // pgx workloads
	tracker    *leakcheck.Tracker
	pgxTracker *leakcheck.PgxTracker
	inj        *faults.Injector
	pgxInj     *faults.PgxInjector
	set        faults.FaultSet
	ledger     *ledger

	ops, errs  int64
	faults     int64
	next       int // the index after the last operation run
	gen        int // the ledger generation: a new scope each time the ledger is retired
	faultOps   []int
	violations []Violation

	op     atomic.Pointer[opContext] // the operation under way (nil between operations)
	queued time.Duration             // time operations spent queued for a connection
}

// runState is shared by the workers of one run.
type runState struct {
	epoch   atomic.Int64 // bumped at the start and at the end of every server chaos action: odd while one runs
	target  Target
	slots   chan struct{}     // the run's share of the server's connections (nil: no limit)
	clean   *sql.DB           // a pool of its own, no fault: reads back the truth
	fresh   leakcheck.Session // the session state of a fresh connection
	stopped atomic.Bool
	stopCh  chan struct{} // closed with stopped set (stop)
	once    sync.Once

	durationDone atomic.Bool // the run's duration has passed
	chaosActed   atomic.Bool // every kind of server chaos configured has acted
}

// endIfDone stops the workers once the duration has passed and, with server chaos, every
// kind of it has acted at least once.
func (rs *runState) endIfDone(cfg *Config) {
	if rs.durationDone.Load() && (!cfg.serverChaos() || rs.chaosActed.Load()) {
		rs.stop()
	}
}

// stop tells the workers to start no more operations, and the ones queued for a connection
// to give up.
func (rs *runState) stop() {
	rs.stopped.Store(true)
	rs.once.Do(func() { close(rs.stopCh) })
}

// overlapped reports whether server chaos ran at any moment since epoch was read.
func (rs *runState) overlapped(epoch int64) bool {
	return epoch%2 == 1 || rs.epoch.Load() != epoch
}

func newWorker(ctx context.Context, id int, cfg *Config, wl *Workload, rs *runState) (*worker, error) {
	w := &worker{id: id, seed: cfg.Seed + int64(id), cfg: cfg, wl: wl, run: rs,
		appName: appName(rs.target.AppName, id), ledger: newLedger()}
	w.pub = Worker{ID: id, Seed: w.seed, Scope: w.scope(), ledger: w.ledger}
	var err error
	if wl.Pgx {
		err = w.openPgx(ctx)
	} else {
		err = w.openSQL()
	}
	if err != nil {
		return nil, fmt.Errorf("chaos: worker %d: %w", id, err)
	}
	return w, nil
}

// scope is the worker's scope name for its ledger generation.
func (w *worker) scope() string {
	if w.gen == 0 {
		return fmt.Sprintf("%s-s%d", w.appName, w.id)
	}
	return fmt.Sprintf("%s-s%d-g%d", w.appName, w.id, w.gen)
}

// openSQL opens the worker's database/sql pool: through its connection queue, its tracker
// and its injector (a Wire on its connections; terminate through the admin pool).
func (w *worker) openSQL() error {
	pc, err := pgx.ParseConfig(w.run.target.DSN)
	if err != nil {
		return fmt.Errorf("parse dsn: %w", err)
	}
	pc.RuntimeParams["application_name"] = w.appName
	w.tracker = leakcheck.NewTracker()
	wire := faults.NewWire()
	wire.Install(&pc.Config)
	opts := []faults.InjectorOption{faults.WithMaxSteps(maxTraceSteps), faults.WithWire(wire)}
	if w.run.target.Admin != nil {
		opts = append(opts, faults.WithServer(faults.NewServer(w.run.target.Admin), w.appName))
	}
	w.inj = faults.NewInjector(opts...)
	w.set = Faults(w.run.target.Admin != nil, w.cfg.Panics)
	conn := drvwrap.WrapConnector(stdlib.GetConnector(*pc), newConnQueue(&w.op, w.run.slots, w.run.stopCh).hooks())
	if !w.cfg.NoChecks {
		conn = w.inj.WrapConnector(w.tracker.WrapConnector(conn))
	}
	w.db = sql.OpenDB(conn)
	w.db.SetMaxOpenConns(2)
	w.db.SetMaxIdleConns(2)
	switch {
	case w.run.slots == nil:
	case w.cfg.Workers < cap(w.run.slots):
		// The run shares the server's connections out: one idle connection a worker
		// may keep, and there is a slot left over.
		w.db.SetMaxIdleConns(1)
	default:
		// More workers than slots: an idle connection would keep its slot from a
		// worker that needs it.
		w.db.SetMaxIdleConns(0)
	}
	return nil
}

// openPgx opens the worker's pgxpool: its PgxInjector on the wire, its PgxTracker.
func (w *worker) openPgx(ctx context.Context) error {
	pc, err := pgxpool.ParseConfig(w.run.target.DSN)
	if err != nil {
		return fmt.Errorf("parse dsn: %w", err)
	}
	pc.ConnConfig.RuntimeParams["application_name"] = w.appName
	pc.MaxConns = 2
	w.pgxTracker = leakcheck.NewPgxTracker()
	w.pgxInj = faults.NewPgxInjector()
	if !w.cfg.NoChecks {
		w.pgxTracker.Install(pc)
		w.pgxInj.Install(&pc.ConnConfig.Config)
	}
	w.set = PgxFaults()
	w.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("open pgx pool: %w", err)
	}
	return nil
}

// close closes the worker's pool. A pgxpool whose connection the code under test leaked
// (a finding already) is left closing: pgxpool.Pool.Close waits for every acquired
// connection, for ever.
func (w *worker) close() {
	if w.db != nil {
		w.db.Close()
	}
	if w.pool != nil {
		if w.pool.Stat().AcquiredConns() > 0 {
			go w.pool.Close()
		} else {
			w.pool.Close()
		}
	}
}

// appName is the application_name of worker id: short enough for Postgres' 63 bytes.
func appName(prefix string, id int) string {
	if len(prefix) > 50 {
		prefix = prefix[len(prefix)-50:]
	}
	return fmt.Sprintf("%s-w%d", prefix, id)
}

func (w *worker) wantsFaults(i int) bool {
	if w.cfg.NoChecks || w.cfg.FaultRate == 0 {
		return false
	}
	if w.cfg.FaultsAt == nil {
		return true
	}
	for _, j := range w.cfg.FaultsAt {
		if j == i {
			return true
		}
	}
	return false
}

// setup prepares the worker's current scope.
func (w *worker) setup(ctx context.Context) error {
	if w.wl.Setup == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	defer cancel()
	if err := w.wl.Setup(sctx, w.run.clean, &w.pub); err != nil {
		return fmt.Errorf("chaos: worker %d: set up scope %s: %w", w.id, w.pub.Scope, err)
	}
	return nil
}

// loop runs the worker's operations until its count is done or ctx ends.
func (w *worker) loop(ctx context.Context) {
	n := w.cfg.opsOf(w.id)
	for i := w.cfg.From; n < 0 || i < n; i++ {
		if ctx.Err() != nil || w.run.stopped.Load() {
			return
		}
		w.next = i + 1
		if !w.step(ctx, i) {
			return
		}
		if !w.cfg.NoChecks && len(w.ledger.order) >= w.cfg.MaxWrites && !w.retire(ctx, i) {
			return
		}
		if !w.cfg.NoChecks && (i+1)%w.cfg.ServerCheckEvery == 0 && w.cfg.CheckTimeout > 0 {
			if !w.checkServer(ctx, i) {
				return
			}
		}
	}
}

// arm installs the decider of operation i (nil: no faults) on the worker's injector.
func (w *worker) arm(d faults.Decider) {
	if w.pgxInj != nil {
		w.pgxInj.Use(d)
		return
	}
	w.inj.Use(d)
}

// fired returns what fired in the operation under way.
func (w *worker) fired() []faults.Firing {
	if w.pgxInj != nil {
		return w.pgxInj.Fired()
	}
	return w.inj.Fired()
}

// trace prints the steps of the last operation.
func (w *worker) trace() string {
	if w.pgxInj != nil {
		t := w.pgxInj.Trace()
		if len(t) > maxTraceSteps {
			t = t[:maxTraceSteps]
		}
		return traceText(t)
	}
	return traceText(w.inj.Trace())
}

// context returns the context of an operation: a cancel fault cancels it alone.
func (w *worker) context(parent context.Context) (context.Context, context.CancelFunc) {
	if w.pgxInj != nil {
		return w.pgxInj.Context(parent)
	}
	return w.inj.Context(parent)
}

// step runs operation i and its per-operation checks; false stops the worker.
func (w *worker) step(runCtx context.Context, i int) bool {
	choice := opRand(w.seed, i, saltChoice)
	op := w.wl.pick(choice.IntN(w.wl.totalWeight()))

	octx, cancelOp := newOpContext(runCtx, w.cfg.OpTimeout)
	defer cancelOp()
	w.op.Store(octx)
	defer func() {
		w.op.Store(nil)
		w.queued += octx.queuedFor()
	}()
	ctx, cancel := w.context(octx)
	defer cancel()
	if w.wantsFaults(i) {
		w.arm(faults.NewRate(int64(opRand(w.seed, i, saltFaults).Uint64()), w.cfg.FaultRate, w.set))
	} else {
		w.arm(nil)
	}
	o := &Op{Worker: &w.pub, Index: i, Rand: choice, w: w, epoch: w.run.epoch.Load()}
	panicked, err := w.do(ctx, op, o)
	firings := w.fired()
	fired := firedText(firings)
	for _, k := range o.writes {
		w.ledger.record(k, w.outcomeOf(err, o.epoch))
	}
	w.faults += int64(len(fired))
	w.ops++
	if c := w.cfg.Counters; c != nil {
		c.Faults.Add(int64(len(fired)))
		c.Ops.Add(1)
		if err != nil {
			c.Errors.Add(1)
		}
	}
	if err != nil {
		w.errs++
	}
	if len(fired) > 0 {
		if len(w.faultOps) >= 4096 {
			w.faultOps = append(w.faultOps[:0], w.faultOps[2048:]...)
		}
		w.faultOps = append(w.faultOps, i)
		if w.cfg.Log != nil {
			fmt.Fprintf(w.cfg.Log, "worker %d op %d %s: %s -> %v\n", w.id, i, op.Name, strings.Join(fired, ", "), err)
		}
	}
	if w.cfg.NoChecks {
		return true
	}
	if runCtx.Err() != nil || errors.Is(err, errRunEnded) {
		// Interrupted: the operation was cut short by the run ending, not by a fault.
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == context.DeadlineExceeded && !w.run.overlapped(o.epoch) {
		w.violate(i, op.Name, fired, "deadline", fmt.Sprintf("the operation was still running after %s of its own time (not counting %s queued for a connection)",
			w.cfg.OpTimeout, octx.queuedFor().Round(time.Millisecond)), "")
		return false
	}
	injectedPanic := panickedFault(firings)
	switch {
	case panicked != nil && !injectedPanic:
		w.violate(i, op.Name, fired, "panic", fmt.Sprintf("the operation panicked with no panic injected: %v", panicked), "")
		return false
	case injectedPanic && panicked == nil && err == nil:
		w.violate(i, op.Name, fired, "swallowed-panic", "a panic was injected in the operation's driver call and the operation reported success", "")
		return false
	}
	if !w.checkLeaks(runCtx, i, op.Name, fired, err) {
		return false
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		// An injected error aborted the transaction (as any error does on Postgres) and the
		// code went on to commit it: the caller learns only that the commit rolled back, not
		// what failed. (The write failed: the ledger has it as not stored.)
		w.violate(i, op.Name, fired, "swallowed-error", "the operation went on after an error in its transaction and committed it: "+err.Error(), "")
		return false
	}
	if err != nil && panicked == nil && len(fired) == 0 && !w.cfg.serverChaos() && !w.expected(err) {
		w.violate(i, op.Name, fired, "unexpected-error", "the operation failed with no fault injected and no server chaos: "+err.Error(), "")
		return false
	}
	if len(o.reads) > 0 {
		w.violate(i, op.Name, fired, "read", strings.Join(o.reads, "; "), "")
		return false
	}
	return true
}

// checkLeaks runs the per-operation pool and long-transaction checks.
func (w *worker) checkLeaks(runCtx context.Context, i int, op string, fired []string, err error) bool {
	checkCtx, cancel := context.WithTimeout(runCtx, w.cfg.CheckTimeout+time.Second)
	defer cancel()
	var lerr error
	if w.pool != nil {
		lerr = leakcheck.Find(checkCtx, leakcheck.WithPgxPool(w.pool, w.pgxTracker), leakcheck.WithTimeout(w.cfg.CheckTimeout))
	} else {
		lerr = leakcheck.Find(checkCtx, leakcheck.WithDB(w.db), leakcheck.WithTracker(w.tracker), leakcheck.WithTimeout(w.cfg.CheckTimeout))
	}
	if lerr == nil {
		return true
	}
	if runCtx.Err() != nil {
		return false
	}
	inv, msg, detail := findings(lerr)
	if inv == string(leakcheck.CheckPool) {
		msg = "after the operation returned (" + errText(err) + "): " + msg
	}
	w.violate(i, op, fired, inv, msg, detail)
	return false
}

// do runs the operation, recovering a panic.
func (w *worker) do(ctx context.Context, op *Operation, o *Op) (panicked any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
			err = fmt.Errorf("chaos: operation %s panicked: %v", op.Name, p)
		}
	}()
	if w.pool != nil {
		return nil, op.RunPgx(ctx, w.pool, o)
	}
	return nil, op.Run(ctx, w.db, o)
}

// panickedFault reports whether a panic fault fired.
func panickedFault(fs []faults.Firing) bool {
	for _, f := range fs {
		if f.Rule.Fault.Kind == faults.KindPanic {
			return true
		}
	}
	return false
}

func (w *worker) expected(err error) bool { return w.wl.Expected != nil && w.wl.Expected(err) }

// retire checks the worker's ledger and invariants against the database and starts a new
// scope, so that a long run's ledger stays bounded. A check that cannot read (server chaos)
// is tried again after the next operation.
func (w *worker) retire(runCtx context.Context, i int) bool {
	ctx, cancel := context.WithTimeout(runCtx, w.cfg.OpTimeout)
	defer cancel()
	problems, err := w.verify(ctx)
	if err != nil {
		return true
	}
	if len(problems) > 0 {
		for _, p := range problems {
			w.violate(i, "", nil, p.invariant, p.message, "")
		}
		return false
	}
	old := w.ledger
	w.ledger = newLedger()
	w.ledger.acked, w.ledger.ambiguous = old.acked, old.ambiguous
	// With server chaos the server may be restarting or paused: try again, each attempt in
	// a scope of its own (a half-made one is left behind), until it answers.
	deadline := time.Now().Add(max(w.cfg.OpTimeout, time.Minute))
	for {
		w.gen++
		w.pub = Worker{ID: w.id, Seed: w.seed, Scope: w.scope(), ledger: w.ledger}
		err = w.setup(runCtx)
		if err == nil || !w.cfg.serverChaos() || runCtx.Err() != nil || time.Now().After(deadline) {
			break
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-runCtx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if err != nil {
		if runCtx.Err() != nil {
			return false
		}
		w.violate(i, "", nil, "setup", err.Error(), "")
		return false
	}
	return true
}

type problem struct{ invariant, message string }

// verify checks the worker's pooled sessions and reads its scope back: its ledger and every
// invariant.
func (w *worker) verify(ctx context.Context) ([]problem, error) {
	out := w.checkSessions(ctx, w.run.fresh)
	ps, err := w.ledger.verify(ctx, w.run.clean, &w.pub, w.wl.Lookup)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		out = append(out, problem{"ledger", p})
	}
	for _, inv := range w.wl.Invariants {
		ps, err := inv.Check(ctx, w.run.clean, &w.pub)
		if err != nil {
			return nil, fmt.Errorf("check invariant %s: %w", inv.Name, err)
		}
		for _, p := range ps {
			out = append(out, problem{inv.Name, p})
		}
	}
	return out, nil
}

// checkServer runs the server check for the worker's application_name.
func (w *worker) checkServer(runCtx context.Context, i int) bool {
	if w.run.target.Admin == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(runCtx, w.cfg.CheckTimeout+2*time.Second)
	defer cancel()
	err := leakcheck.FindServer(ctx, w.run.target.Admin, w.appName, leakcheck.WithTimeout(w.cfg.CheckTimeout))
	if err == nil || runCtx.Err() != nil {
		return true
	}
	if !errors.Is(err, leakcheck.ErrLeak) {
		// The check could not run (the server restarting): not a finding.
		return true
	}
	_, msg, detail := findings(err)
	w.violate(i, "", nil, "server", "after operation "+fmt.Sprint(i)+": "+msg, detail)
	return false
}

func (w *worker) violate(i int, op string, fired []string, inv, msg, attribution string) {
	if w.run.slots != nil && w.db != nil {
		// The worker stops here: its idle connections give their slots back.
		defer w.db.SetMaxIdleConns(0)
	}
	v := Violation{Invariant: inv, Worker: w.id, StreamSeed: w.seed, OpIndex: i, Operation: op, Faults: fired,
		Message: msg, Trace: w.trace(), Attribution: attribution}
	w.violations = append(w.violations, v)
	if w.cfg.Counters != nil {
		w.cfg.Counters.Violations.Add(1)
	}
	if w.cfg.Log != nil {
		fmt.Fprintf(w.cfg.Log, "VIOLATION %s\n", v)
	}
}

// findings splits a leakcheck error into the check of its first finding, its summaries and
// its details.
func findings(err error) (check, summary, detail string) {
	var le *leakcheck.Error
	if !errors.As(err, &le) || len(le.Findings) == 0 {
		return string(leakcheck.CheckPool), err.Error(), ""
	}
	var s, d []string
	for _, f := range le.Findings {
		s = append(s, f.Summary)
		if f.Detail != "" {
			d = append(d, f.Detail)
		}
	}
	return string(le.Findings[0].Check), strings.Join(s, "; "), strings.Join(d, "\n")
}

func errText(err error) string {
	if err == nil {
		return "it returned success"
	}
	return "it returned: " + err.Error()
}

// outcomeOf classifies a write: acknowledged, failed cleanly, or ambiguous (a statement or
// commit cut after the server had it, an injected panic, or server chaos during the
// operation).
func (w *worker) outcomeOf(err error, epoch int64) Outcome {
	if err == nil {
		return Acked
	}
	fs := w.fired()
	if ambiguousFiring(fs) || panickedFault(fs) || w.run.overlapped(epoch) {
		return Ambiguous
	}
	return Failed
}
