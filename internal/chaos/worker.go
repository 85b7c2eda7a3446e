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
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// The operations of the mix, with their weights.
var mix = []struct {
	name   string
	weight int
}{
	{handlers.OpCreateThread, 14},
	{handlers.OpGetThread, 14},
	{handlers.OpListThreads, 8},
	{handlers.OpUpdateThread, 16},
	{handlers.OpSendMessage, 22},
	{handlers.OpGetMessages, 14},
	{handlers.OpAutoRename, 6},
	{handlers.OpDeleteThread, 6},
}

var mixTotal = func() int {
	n := 0
	for _, m := range mix {
		n += m.weight
	}
	return n
}()

// opRand returns the generator of operation i of the stream seeded by seed; salt separates
// the choices of the operation from its faults.
func opRand(seed int64, i int, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed)^salt, uint64(i)))
}

const (
	saltChoice = 0x243f6a8885a308d3
	saltFaults = 0x13198a2e03707344
)

// titleGen is the worker's title generator: deterministic, and run through the tracker's
// External so that a transaction held across it is a finding.
type titleGen struct {
	tracker *leakcheck.Tracker
	last    string
}

func (g *titleGen) GenerateTitle(ctx context.Context, first string) (string, error) {
	var title string
	err := g.tracker.External(ctx, "title generator", func(ctx context.Context) error {
		t, err := handlers.FirstWordsTitle{Words: 4}.GenerateTitle(ctx, first)
		title = t
		return err
	})
	g.last = title
	return title, err
}

// worker runs one stream of operations on its own pool.
type worker struct {
	id      int
	seed    int64
	cfg     *Config
	run     *runState
	appName string
	user    string

	db      *sql.DB
	svc     *handlers.Service
	tracker *leakcheck.Tracker
	inj     *faults.Injector
	faults  int64 // faults fired, in all
	titles  *titleGen
	ledger  *ledger

	ops, errs   int64
	next        int // the index after the last operation run
	gen         int // the ledger generation: a new user each time the ledger is retired
	faultOps    []int
	violations  []Violation
	readProblem string

	op     atomic.Pointer[opContext] // the operation under way (nil between operations)
	queued time.Duration             // time operations spent queued for a connection
}

// runState is shared by the workers of one run.
type runState struct {
	epoch   atomic.Int64 // bumped at the start and at the end of every server chaos action: odd while one runs
	target  Target
	slots   chan struct{}     // the run's share of the server's connections (nil: no limit)
	clean   *handlers.Service // on a pool of its own, no fault: reads back the truth
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

func newWorker(id int, cfg *Config, rs *runState) (*worker, error) {
	w := &worker{id: id, seed: cfg.Seed + int64(id), cfg: cfg, run: rs,
		appName: appName(rs.target.AppName, id), ledger: newLedger()}
	w.user = fmt.Sprintf("%s-user%d", w.appName, id)
	pc, err := pgx.ParseConfig(rs.target.DSN)
	if err != nil {
		return nil, fmt.Errorf("chaos: worker %d: parse dsn: %w", id, err)
	}
	pc.RuntimeParams["application_name"] = w.appName
	w.tracker = leakcheck.NewTracker()
	// The worker's own injector: the wire kinds through its own Wire, terminate through
	// the admin pool, on the worker's sessions alone.
	wire := faults.NewWire()
	wire.Install(&pc.Config)
	opts := []faults.InjectorOption{faults.WithMaxSteps(maxTraceSteps), faults.WithWire(wire)}
	if rs.target.Admin != nil {
		opts = append(opts, faults.WithServer(faults.NewServer(rs.target.Admin), w.appName))
	}
	w.inj = faults.NewInjector(opts...)
	conn := drvwrap.WrapConnector(stdlib.GetConnector(*pc), newConnQueue(&w.op, rs.slots, rs.stopCh).hooks())
	if !cfg.NoChecks {
		conn = w.inj.WrapConnector(w.tracker.WrapConnector(conn))
	}
	w.db = sql.OpenDB(conn)
	w.db.SetMaxOpenConns(2)
	w.db.SetMaxIdleConns(2)
	switch {
	case rs.slots == nil:
	case cfg.Workers < cap(rs.slots):
		// The run shares the server's connections out: one idle connection a worker
		// may keep (the handlers use one at a time), and there is a slot left over.
		w.db.SetMaxIdleConns(1)
	default:
		// More workers than slots: an idle connection would keep its slot from a
		// worker that needs it.
		w.db.SetMaxIdleConns(0)
	}
	w.titles = &titleGen{tracker: w.tracker}
	w.svc = handlers.New(w.db, handlers.WithTitleGenerator(w.titles))
	return w, nil
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
		if !w.cfg.NoChecks && len(w.ledger.order) >= w.cfg.MaxThreads && !w.retire(ctx, i) {
			return
		}
		if !w.cfg.NoChecks && (i+1)%w.cfg.ServerCheckEvery == 0 && w.cfg.CheckTimeout > 0 {
			if !w.checkServer(ctx, i) {
				return
			}
		}
	}
}

// step runs operation i and its per-operation checks; false stops the worker.
func (w *worker) step(runCtx context.Context, i int) bool {
	choice := opRand(w.seed, i, saltChoice)
	pick := choice.IntN(mixTotal)
	op := mix[len(mix)-1].name
	for _, m := range mix {
		if pick < m.weight {
			op = m.name
			break
		}
		pick -= m.weight
	}
	live := w.ledger.live()
	var th *threadLedger
	if len(live) > 0 {
		th = live[choice.IntN(len(live))]
	}
	if th == nil && op != handlers.OpListThreads {
		op = handlers.OpCreateThread
	}

	octx, cancelOp := newOpContext(runCtx, w.cfg.OpTimeout)
	defer cancelOp()
	w.op.Store(octx)
	defer func() {
		w.op.Store(nil)
		w.queued += octx.queuedFor()
	}()
	// A cancel fault cancels this operation's context alone.
	ctx, cancel := w.inj.Context(octx)
	defer cancel()
	if w.wantsFaults(i) {
		w.inj.Use(faults.NewRate(int64(opRand(w.seed, i, saltFaults).Uint64()), w.cfg.FaultRate, Faults(w.run.target.Admin != nil)))
	} else {
		w.inj.Use(nil)
	}
	epoch := w.run.epoch.Load()
	err := w.do(ctx, choice, op, th, i, epoch)
	fired := firedText(w.inj.Fired())
	w.faults += int64(len(fired))
	if w.cfg.Counters != nil {
		w.cfg.Counters.Faults.Add(int64(len(fired)))
	}
	w.ops++
	if w.cfg.Counters != nil {
		w.cfg.Counters.Ops.Add(1)
	}
	if err != nil {
		w.errs++
		if w.cfg.Counters != nil {
			w.cfg.Counters.Errors.Add(1)
		}
	}
	if len(fired) > 0 {
		if len(w.faultOps) >= 4096 {
			w.faultOps = append(w.faultOps[:0], w.faultOps[2048:]...)
		}
		w.faultOps = append(w.faultOps, i)
		if w.cfg.Log != nil {
			fmt.Fprintf(w.cfg.Log, "worker %d op %d %s: %s -> %v\n", w.id, i, op, strings.Join(fired, ", "), err)
		}
	}
	if w.cfg.NoChecks {
		return true
	}
	if runCtx.Err() != nil || errors.Is(err, errRunEnded) {
		// Interrupted: the operation was cut short by the run ending, not by a fault.
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == context.DeadlineExceeded && !w.run.overlapped(epoch) {
		w.violate(i, op, fired, "deadline", fmt.Sprintf("the operation was still running after %s of its own time (not counting %s queued for a connection)",
			w.cfg.OpTimeout, octx.queuedFor().Round(time.Millisecond)), "")
		return false
	}
	checkCtx, cancelCheck := context.WithTimeout(runCtx, w.cfg.CheckTimeout+time.Second)
	defer cancelCheck()
	if perr := leakcheck.FindPool(checkCtx, w.db, leakcheck.WithTimeout(w.cfg.CheckTimeout), leakcheck.WithTracker(w.tracker)); perr != nil {
		if runCtx.Err() != nil {
			return false
		}
		msg, detail := findings(perr)
		w.violate(i, op, fired, "pool", "after the operation returned ("+errText(err)+"): "+msg, detail)
		return false
	}
	if lerr := leakcheck.FindLongTransactions(checkCtx, w.tracker); lerr != nil {
		msg, detail := findings(lerr)
		w.violate(i, op, fired, "long-transaction", msg, detail)
		return false
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		// An injected error aborted the transaction (as any error does on Postgres) and the
		// code went on to commit it: the caller learns only that the commit rolled back, not
		// what failed. (The write failed: the ledger has it as not stored.)
		w.violate(i, op, fired, "swallowed-error", "the operation went on after an error in its transaction and committed it: "+err.Error(), "")
		return false
	}
	if err != nil && len(fired) == 0 && !w.cfg.serverChaos() && !expected(err) {
		w.violate(i, op, fired, "unexpected-error", "the operation failed with no fault injected and no server chaos: "+err.Error(), "")
		return false
	}
	if w.readProblem != "" {
		w.violate(i, op, fired, "ledger", w.readProblem, "")
		return false
	}
	return true
}

// retire checks the worker's ledger against the database and starts a new one under a new
// user, so that a long run's ledger (and the user's list of threads) stays bounded. A check
// that cannot read (server chaos) is tried again after the next operation.
func (w *worker) retire(runCtx context.Context, i int) bool {
	ctx, cancel := context.WithTimeout(runCtx, w.cfg.OpTimeout)
	defer cancel()
	problems, err := w.ledger.verify(ctx, w.run.clean, w.user)
	if err != nil {
		return true
	}
	if len(problems) > 0 {
		w.violate(i, "", nil, "ledger", strings.Join(problems, "; "), "")
		return false
	}
	old := w.ledger
	w.ledger = newLedger()
	w.ledger.acked, w.ledger.ambiguous = old.acked, old.ambiguous
	w.gen++
	w.user = fmt.Sprintf("%s-user%d-g%d", w.appName, w.id, w.gen)
	return true
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
	msg, detail := findings(err)
	w.violate(i, "", nil, "server", "after operation "+fmt.Sprint(i)+": "+msg, detail)
	return false
}

func (w *worker) violate(i int, op string, fired []string, inv, msg, attribution string) {
	if w.run.slots != nil {
		// The worker stops here: its idle connections give their slots back.
		defer w.db.SetMaxIdleConns(0)
	}
	v := Violation{Invariant: inv, Worker: w.id, StreamSeed: w.seed, OpIndex: i, Operation: op, Faults: fired,
		Message: msg, Trace: traceText(w.inj.Trace()), Attribution: attribution}
	w.violations = append(w.violations, v)
	if w.cfg.Counters != nil {
		w.cfg.Counters.Violations.Add(1)
	}
	if w.cfg.Log != nil {
		fmt.Fprintf(w.cfg.Log, "VIOLATION %s\n", v)
	}
}

// expected reports whether err is an answer the handlers give without any failure: a
// missing thread, a conflict (e.g. auto-rename of a thread with no user message), bad input.
func expected(err error) bool {
	var ve *handlers.ValidationError
	return errors.Is(err, handlers.ErrNotFound) || errors.Is(err, handlers.ErrConflict) || errors.As(err, &ve)
}

// findings splits a leakcheck error into its summaries and its details.
func findings(err error) (summary, detail string) {
	var le *leakcheck.Error
	if !errors.As(err, &le) {
		return err.Error(), ""
	}
	var s, d []string
	for _, f := range le.Findings {
		s = append(s, f.Summary)
		if f.Detail != "" {
			d = append(d, f.Detail)
		}
	}
	return strings.Join(s, "; "), strings.Join(d, "\n")
}

func errText(err error) string {
	if err == nil {
		return "it returned success"
	}
	return "it returned: " + err.Error()
}

// outcomeOf classifies a write: acknowledged, failed cleanly, or ambiguous (a commit cut
// after the server had it, or server chaos during the operation).
func (w *worker) outcomeOf(err error, epoch int64) outcome {
	if err == nil {
		return acked
	}
	if ambiguousFiring(w.inj.Fired()) || w.run.overlapped(epoch) {
		return ambiguous
	}
	return failed
}

// do runs one operation and records its writes in the ledger.
func (w *worker) do(ctx context.Context, choice *rand.Rand, op string, th *threadLedger, i int, epoch int64) error {
	s := w.svc
	switch op {
	case handlers.OpCreateThread:
		title := fmt.Sprintf("w%d-c%d", w.id, i)
		t, err := s.CreateThread(ctx, w.user, handlers.CreateThreadInput{Title: title, Metadata: map[string]any{"op": i}})
		if o := w.outcomeOf(err, epoch); o == acked {
			w.ledger.created(t.ID, title)
		} else {
			w.ledger.createOutcome(title, o)
		}
		return err
	case handlers.OpGetThread:
		_, err := s.GetThread(ctx, w.user, th.id)
		return w.checkRead(err, th, epoch)
	case handlers.OpListThreads:
		_, err := s.ListThreads(ctx, w.user, handlers.Page{Offset: choice.IntN(3), Limit: 1 + choice.IntN(20)})
		return err
	case handlers.OpUpdateThread:
		title := fmt.Sprintf("w%d-u%d", w.id, i)
		key := fmt.Sprintf("k%d", i)
		in := handlers.UpdateThreadInput{Metadata: map[string]any{key: i}}
		if choice.IntN(2) == 0 {
			in.Title = &title
		}
		_, err := s.UpdateThread(ctx, w.user, th.id, in)
		o := w.outcomeOf(err, epoch)
		if errors.Is(err, handlers.ErrNotFound) {
			o = failed
		}
		w.ledger.count(o)
		th.keys[key] = o
		if in.Title != nil {
			th.setTitle(title, o)
		}
		return err
	case handlers.OpSendMessage:
		cid := fmt.Sprintf("w%d-m%d", w.id, i)
		in := handlers.SendMessageInput{Role: "user", Content: fmt.Sprintf("message %d from worker %d", i, w.id), ClientMessageID: cid}
		_, err := s.SendMessage(ctx, w.user, th.id, in)
		o := w.outcomeOf(err, epoch)
		th.mergeMsg(cid, o)
		if err != nil && (o == ambiguous || handlers.IsRetryable(err)) && ctx.Err() == nil {
			// Retry once with the same client id: the send must stay idempotent.
			_, err = s.SendMessage(ctx, w.user, th.id, in)
			th.mergeMsg(cid, w.outcomeOf(err, epoch))
		}
		w.ledger.count(th.msgs[cid])
		return err
	case handlers.OpGetMessages:
		_, err := s.GetMessages(ctx, w.user, th.id, handlers.Page{Offset: 0, Limit: 1 + choice.IntN(50)})
		return w.checkRead(err, th, epoch)
	case handlers.OpAutoRename:
		w.titles.last = ""
		t, err := s.AutoRename(ctx, w.user, th.id)
		o := w.outcomeOf(err, epoch)
		switch {
		case o == acked:
			th.setTitle(t.Title, acked)
		case w.titles.last != "":
			// The title was generated: its write may or may not have happened.
			if o == failed {
				o = ambiguous
			}
			th.setTitle(w.titles.last, o)
		}
		w.ledger.count(o)
		return err
	case handlers.OpDeleteThread:
		err := s.DeleteThread(ctx, w.user, th.id)
		o := w.outcomeOf(err, epoch)
		switch {
		case errors.Is(err, handlers.ErrNotFound) && th.deleted == ambiguous:
			th.deleted = acked // an earlier ambiguous delete did happen
		case th.deleted == acked:
		case th.deleted == ambiguous && o == failed:
		default:
			th.deleted = o
		}
		w.ledger.count(o)
		return err
	}
	return fmt.Errorf("chaos: unknown operation %q", op)
}

// checkRead notes a read of a thread the worker knows is live answering "not found".
func (w *worker) checkRead(err error, th *threadLedger, epoch int64) error {
	if errors.Is(err, handlers.ErrNotFound) && th.deleted == 0 && !w.run.overlapped(epoch) {
		if w.inj.FiredCount() == 0 {
			w.readProblem = fmt.Sprintf("thread %s answered not found to its owner although it was never deleted", th.id)
		}
	}
	return err
}
