package threadsuite

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// ProbeEnv is where a probe runs: one database on a real PostgreSQL, migrated
// with handlers.Migrate (a pgtest.Database gives all three fields).
type ProbeEnv struct {
	// DSN opens the probe's pools (pgx stdlib); it must carry
	// application_name=AppName.
	DSN string
	// AppName is the application_name of every connection opened from DSN;
	// the server check looks at exactly these backends.
	AppName string
	// Admin is a pool on the same server with a different application_name,
	// for the server check.
	Admin *sql.DB
}

// ProbeConfig says how hard a probe pushes. The zero value of each field
// takes the default written next to it.
type ProbeConfig struct {
	// Seed drives every random choice of the probe (operations, threads,
	// faults, delays); the same seed replays the same choices. Print it.
	Seed int64
	// Workers is how many goroutines run operations at once (default 8).
	Workers int
	// Ops is how many operations each worker runs (default 20).
	Ops int
	// PoolSize is the MaxOpenConns of the pool under test (default: Workers
	// in lost-update, send-order and finished-tx, Workers+1 in
	// delete-vs-send, 2 per worker in mixed, 2 in pool and the single-request
	// probes). Small pools (1, 2) expose a second connection taken while one
	// is held: it shows up as a deadline finding with the goroutine dump, not
	// as a hang.
	PoolSize int
	// OpTimeout bounds each operation (default 3s); an operation still
	// running then is a deadline finding carrying the goroutine dump.
	OpTimeout time.Duration
	// Timeout bounds the whole probe (default 60s).
	Timeout time.Duration
	// FaultRate is the chance that an operation of the mixed probe runs with
	// a random fault plan (default 0.5; negative: none).
	FaultRate float64
	// NoGoroutineCheck turns the goroutine check off, for a process whose
	// other goroutines come and go meanwhile (parallel tests, a chaos run).
	NoGoroutineCheck bool
	// Replay returns the command that replays the probe with this seed; nil:
	// the go test command of TestProbes.
	Replay func(probe string, seed int64) string
}

func (c ProbeConfig) withDefaults() ProbeConfig {
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Ops <= 0 {
		c.Ops = 20
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 3 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.FaultRate == 0 {
		c.FaultRate = 0.5
	}
	return c
}

// ProbeFinding is one thing a probe found broken.
type ProbeFinding struct {
	Probe   string
	Check   string // the check that broke, e.g. "deadline", "pool", "server", "lost-update", "seq"
	Message string
}

// String returns the finding as "probe: check: message".
func (f ProbeFinding) String() string {
	return fmt.Sprintf("%s: %s: %s", f.Probe, f.Check, f.Message)
}

// ProbeResult is the outcome of one probe run.
type ProbeResult struct {
	Probe    string
	Seed     int64
	Ops      int           // operations run
	Errors   int           // operations that returned an error (injected faults included)
	Fired    int           // faults that fired
	Duration time.Duration // the whole probe, checks included
	Findings []ProbeFinding
	Replay   string // the command that replays this probe with this seed
}

// Err returns nil when the probe found nothing, else one error listing every
// finding, the seed and the replay command.
func (r ProbeResult) Err() error {
	if len(r.Findings) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "threadsuite: probe %s (seed %d): %d finding(s)", r.Probe, r.Seed, len(r.Findings))
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\n  %s: %s", f.Check, strings.ReplaceAll(strings.TrimRight(f.Message, "\n"), "\n", "\n    "))
	}
	if r.Replay != "" {
		fmt.Fprintf(&b, "\n  replay: %s", r.Replay)
	}
	return errors.New(b.String())
}

// Summary returns one line of figures: operations, errors, faults fired,
// duration, findings.
func (r ProbeResult) Summary() string {
	return fmt.Sprintf("probe %s seed=%d ops=%d errors=%d faults=%d duration=%s findings=%d",
		r.Probe, r.Seed, r.Ops, r.Errors, r.Fired, r.Duration.Round(time.Millisecond), len(r.Findings))
}

// Probe is one concurrency probe of the thread handlers on real Postgres.
// Each runs under a deadline, then checks at quiescence that every pool got
// its connections back, the server holds no session of the probe idle in
// transaction or active and no lock, no goroutine outlived it, and the data
// invariants hold (message counts, seq gap-free, acknowledged writes present).
type Probe struct {
	Name string // e.g. "lost-update"
	Doc  string // one line: what it provokes and what must hold
	run  func(ctx context.Context, r *probeRun)
}

// Probes returns every probe, in a fixed order.
func Probes() []Probe {
	return []Probe{
		{Name: "pool", Doc: "every operation from PoolSize goroutines on a pool of PoolSize connections: none may need a second connection while it holds one", run: probePool},
		{Name: "mixed", Doc: "mixed operations from many goroutines on shared threads, random faults at random steps; acknowledged writes present, failed ones absent, counts and seq consistent", run: probeMixed},
		{Name: "lost-update", Doc: "concurrent metadata patches of distinct keys on one thread: every key survives", run: probeLostUpdate},
		{Name: "send-order", Doc: "concurrent sends to one thread, each retried with its client id: seq 1..n gap-free, no duplicate", run: probeSendOrder},
		{Name: "delete-vs-send", Doc: "sends racing the thread's delete: no send that began after the delete was acknowledged succeeds or is stored", run: probeDeleteVsSend},
		{Name: "finished-tx", Doc: "requests cancelled at random moments, racing database/sql's rollback of their transaction: an acknowledged send is stored, nothing is left open", run: probeFinishedTx},
		{Name: "error-path", Doc: "an operation failing inside its unit of work gives its connection back and leaves no transaction open at once, while its request is still live", run: probeErrorPath},
		{Name: "cancellation", Doc: "a request whose deadline passes while a statement runs must fail: the database gets the request's context", run: probeCancellation},
		{Name: "external-call", Doc: "no transaction or connection is held across the title generator", run: probeExternalCall},
		{Name: "notify", Doc: "no goroutine of AutoRename outlives the request", run: probeNotify},
	}
}

// LookupProbe returns the probe named name.
func LookupProbe(name string) (Probe, bool) {
	for _, p := range Probes() {
		if p.Name == name {
			return p, true
		}
	}
	return Probe{}, false
}

// Run runs the probe against env and returns what it found. It never hangs
// past cfg.Timeout (plus the time the final checks take): a probe still
// running then is a deadline finding with the goroutine dump.
func (p Probe) Run(ctx context.Context, env ProbeEnv, cfg ProbeConfig) ProbeResult {
	cfg = cfg.withDefaults()
	start := time.Now()
	res := ProbeResult{Probe: p.Name, Seed: cfg.Seed}
	if cfg.Replay != nil {
		res.Replay = cfg.Replay(p.Name, cfg.Seed)
	} else {
		res.Replay = fmt.Sprintf("SESSIONSAFE_PROBE_SEED=%d go test -race ./threadsuite -run 'TestProbes/%s$'", cfg.Seed, p.Name)
	}
	r := &probeRun{probe: p.Name, env: env, cfg: cfg}
	var baseline goleak.Option
	if !cfg.NoGoroutineCheck {
		baseline = goleak.IgnoreCurrent()
	}
	plain, err := r.open(2)
	if r.setupFailed(err) {
		return r.result(res, start)
	}
	r.plain = plain

	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil {
				r.find("panic", "the probe panicked: %v\n%s", v, stack(false))
			}
		}()
		p.run(pctx, r)
	}()
	select {
	case <-done:
	case <-pctx.Done():
		r.find("deadline", "the probe did not finish within %s (%v); goroutines:\n%s", cfg.Timeout, pctx.Err(), handlerStacks())
		r.closePools() // releases every goroutine waiting for a connection
		select {
		case <-done:
		case <-time.After(cfg.OpTimeout):
		}
	}
	cancel()

	// Quiescence: every pool, the server, the goroutines.
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	r.checkLeaks(cctx)
	r.closePools()
	_ = r.plain.Close()
	if baseline != nil {
		if err := leakcheck.FindGoroutines(cctx, baseline); err != nil {
			r.find("goroutines", "%v", err)
		}
	}
	return r.result(res, start)
}

// probeRun is the state of one probe run.
type probeRun struct {
	probe string
	env   ProbeEnv
	cfg   ProbeConfig
	plain *sql.DB // un-instrumented: fixtures and reading back

	mu       sync.Mutex
	findings []ProbeFinding
	pools    []*instrumentedPool
	ops      atomic.Int64
	errs     atomic.Int64
	fired    atomic.Int64
	hung     atomic.Bool
}

// instrumentedPool is one instrumented pool of a probe.
type instrumentedPool struct {
	db       *sql.DB
	inj      *faults.Injector
	tracker  *leakcheck.Tracker
	closed   bool
	poolSize int
}

func (r *probeRun) result(res ProbeResult, start time.Time) ProbeResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Ops = int(r.ops.Load())
	res.Errors = int(r.errs.Load())
	res.Fired = int(r.fired.Load())
	res.Findings = append([]ProbeFinding(nil), r.findings...)
	res.Duration = time.Since(start)
	return res
}

func (r *probeRun) find(check, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.findings = append(r.findings, ProbeFinding{Probe: r.probe, Check: check, Message: fmt.Sprintf(format, args...)})
}

// setupFailed reports err, if any, as a "setup" finding: the probe could not
// get as far as its own idea.
func (r *probeRun) setupFailed(err error) bool {
	if err != nil {
		r.find("setup", "%v", err)
		return true
	}
	return false
}

// live reports whether the probe goes on: its context has not ended and no
// operation has hung.
func (r *probeRun) live(ctx context.Context) bool {
	return ctx.Err() == nil && !r.hung.Load()
}

// unexpected reports an "error" finding for an operation that failed with no
// fault to blame, unless the probe is over or hung (then the failure is a
// consequence, reported as such).
func (r *probeRun) unexpected(ctx context.Context, format string, args ...any) {
	if r.live(ctx) {
		r.find("error", format, args...)
	}
}

// countFired adds the faults inj fired to the run's total and returns them.
func (r *probeRun) countFired(inj *faults.Injector) []faults.Firing {
	fired := inj.Fired()
	r.fired.Add(int64(len(fired)))
	return fired
}

// openPool opens a pool of size connections on dsn (pgx stdlib), through the
// given connector wrappers (innermost first).
func openPool(dsn string, size int, wraps ...func(driver.Connector) driver.Connector) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	var c driver.Connector = stdlib.GetConnector(*cfg)
	for _, w := range wraps {
		c = w(c)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	return db, nil
}

// open opens a pool of size connections on the probe's database, through the
// given connector wrappers (innermost first).
func (r *probeRun) open(size int, wraps ...func(driver.Connector) driver.Connector) (*sql.DB, error) {
	db, err := openPool(r.env.DSN, size, wraps...)
	if err != nil {
		return nil, fmt.Errorf("threadsuite: probe %s: %w", r.probe, err)
	}
	return db, nil
}

// pool opens an instrumented pool: a faults.Injector over a leakcheck.Tracker
// over pgx stdlib, registered for the leak checks at quiescence.
func (r *probeRun) pool(size int) (*instrumentedPool, error) {
	p := &instrumentedPool{inj: faults.NewInjector(faults.WithMaxRows(16)), tracker: leakcheck.NewTracker(), poolSize: size}
	db, err := r.open(size, p.tracker.WrapConnector, p.inj.WrapConnector)
	if err != nil {
		return nil, err
	}
	p.db = db
	r.mu.Lock()
	r.pools = append(r.pools, p)
	r.mu.Unlock()
	return p, nil
}

// service returns the handlers on the pool, logging to quiet, with opts.
func (p *instrumentedPool) service(opts ...handlers.Option) *handlers.Service {
	return handlers.New(p.db, append([]handlers.Option{handlers.WithLogger(quiet)}, opts...)...)
}

// poolSize returns the configured PoolSize, or def when none is set.
func (r *probeRun) poolSize(def int) int {
	if r.cfg.PoolSize > 0 {
		return r.cfg.PoolSize
	}
	return def
}

// probeSetup is where most probes start: an instrumented pool, the handlers
// on it, and threads of a user of their own made by the correct handlers.
type probeSetup struct {
	pool *instrumentedPool
	svc  *handlers.Service // on pool, logging to quiet
	user string
	ids  []string
}

// setup opens an instrumented pool of size connections and creates threads
// threads, with msgs messages each, for a fresh user named after tag. It
// returns nil when that failed (a "setup" finding).
func (r *probeRun) setup(size int, tag string, threads, msgs int) *probeSetup {
	p, err := r.pool(size)
	if r.setupFailed(err) {
		return nil
	}
	user := r.probeUser(tag)
	ids, err := r.newThreads(user, threads, msgs)
	if r.setupFailed(err) {
		return nil
	}
	return &probeSetup{pool: p, svc: p.service(), user: user, ids: ids}
}

// settledFacts reads back every thread of user once the probe's operations
// are done; nil when there is nothing to check (the probe's context ended)
// or the reading failed (a "setup" finding).
func (r *probeRun) settledFacts(ctx context.Context, user string) map[string]*threadFacts {
	if ctx.Err() != nil {
		return nil
	}
	fs, err := r.facts(ctx, user)
	if r.setupFailed(err) {
		return nil
	}
	return fs
}

// opsWhileLive yields a worker's operation numbers, 0 to Ops-1, while the
// probe is live.
func (r *probeRun) opsWhileLive(ctx context.Context) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := 0; i < r.cfg.Ops && r.live(ctx); i++ {
			if !yield(i) {
				return
			}
		}
	}
}

// together runs fn(g) for g in 0..n-1, each on a goroutine of its own, all
// released at the same moment, and waits for them.
func together(n int, fn func(g int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			<-start
			fn(g)
		})
	}
	close(start)
	wg.Wait()
}

// workers runs fn(g) for g in 0..n-1, each on a goroutine of its own, and
// waits for them.
func workers(n int, fn func(g int)) {
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() { fn(g) })
	}
	wg.Wait()
}

func (r *probeRun) closePools() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pools {
		if !p.closed {
			p.closed = true
			_ = p.db.Close()
		}
	}
}

// checkLeaks runs the pool check on every open pool (with attribution) and
// the server check on the probe's application_name.
func (r *probeRun) checkLeaks(ctx context.Context) {
	r.mu.Lock()
	pools := slices.Clone(r.pools)
	r.mu.Unlock()
	for i, p := range pools {
		if p.closed {
			continue
		}
		if err := leakcheck.FindPool(ctx, p.db, leakcheck.WithTracker(p.tracker)); err != nil {
			r.find("pool", "pool %d of %d connection(s): %v", i+1, p.poolSize, err)
		}
	}
	if r.env.Admin != nil && r.env.AppName != "" {
		if err := leakcheck.FindServer(ctx, r.env.Admin, r.env.AppName); err != nil {
			r.find("server", "%v", err)
		}
	}
}

// do runs one operation under the probe's per-operation deadline. An
// operation still running after the deadline is a "deadline" finding that
// carries the goroutines of the handlers at that moment; a panic (an injected
// one included) is returned as an error.
func (r *probeRun) do(ctx context.Context, what string, fn func(ctx context.Context) error) (err error) {
	r.ops.Add(1)
	octx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	defer cancel()
	var dump atomic.Pointer[string]
	watch := time.AfterFunc(r.cfg.OpTimeout*9/10, func() {
		d := handlerStacks()
		dump.Store(&d)
	})
	defer func() {
		watch.Stop()
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
		if err != nil {
			r.errs.Add(1)
		}
		if d := dump.Load(); d != nil && ctx.Err() == nil && r.hung.CompareAndSwap(false, true) {
			r.find("deadline", "%s did not finish within %s on a pool of %d connection(s) (a second connection taken while one is held waits forever on a small pool); returned %v; goroutines of the handlers then:\n%s",
				what, r.cfg.OpTimeout, r.poolSizeHint(), err, *d)
		}
	}()
	return fn(octx)
}

func (r *probeRun) poolSizeHint() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pools) > 0 {
		return r.pools[0].poolSize
	}
	return 0
}

// stack returns the stack of the current goroutine, or of all.
func stack(all bool) string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, all)
		if n < len(buf) || len(buf) >= 8<<20 {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// handlerStacks returns the goroutines running code of the handlers or of
// database/sql, the ones a hang is about, bounded in size.
func handlerStacks() string {
	var keep []string
	for _, g := range strings.Split(stack(true), "\n\n") {
		if strings.Contains(g, "sessionsafe/handlers") && !strings.Contains(g, "handlerStacks") {
			keep = append(keep, g)
		}
	}
	out := strings.Join(keep, "\n\n")
	if out == "" {
		out = "(no goroutine of the handlers)"
	}
	if len(out) > 16<<10 {
		out = out[:16<<10] + "\n…"
	}
	return out
}

// probeUser returns a user id unique to this probe run.
func (r *probeRun) probeUser(tag string) string {
	var b [6]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("probe-%s-%s-%x", r.probe, tag, b)
}

// newThreads creates n threads of user, each with msgs messages, on the
// plain pool with the correct handlers.
func (r *probeRun) newThreads(user string, n, msgs int) ([]string, error) {
	svc := handlers.New(r.plain)
	// Fixtures are made on a context of their own: only the probe context's deadline is kept.
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.OpTimeout*4)
	defer cancel()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		t, err := svc.CreateThread(ctx, user, handlers.CreateThreadInput{Title: fmt.Sprintf("probe thread %d", i+1)})
		if err != nil {
			return nil, fmt.Errorf("threadsuite: probe %s: create thread: %w", r.probe, err)
		}
		for j := 0; j < msgs; j++ {
			if _, err := svc.SendMessage(ctx, user, t.ID, handlers.SendMessageInput{Content: fmt.Sprintf("seed message %d", j+1)}); err != nil {
				return nil, fmt.Errorf("threadsuite: probe %s: seed message: %w", r.probe, err)
			}
		}
		ids = append(ids, t.ID)
	}
	return ids, nil
}

// threadFacts is what the data invariants look at for one thread.
type threadFacts struct {
	ID       string
	Counter  int64
	Messages int64
	MaxSeq   int64
	MinSeq   int64
	Archived bool
	Metadata string
	Clients  map[string]int // client message id -> how many messages carry it
}

// facts reads back every thread of user.
func (r *probeRun) facts(ctx context.Context, user string) (map[string]*threadFacts, error) {
	rows, err := r.plain.QueryContext(ctx, `
SELECT t.id::text, t.message_count, count(m.id), coalesce(max(m.seq), 0), coalesce(min(m.seq), 0),
       t.archived_at IS NOT NULL, t.metadata::text
FROM threads t LEFT JOIN messages m ON m.thread_id = t.id
WHERE t.user_id = $1 GROUP BY t.id`, user)
	if err != nil {
		return nil, fmt.Errorf("threadsuite: probe %s: read threads: %w", r.probe, err)
	}
	out := map[string]*threadFacts{}
	for rows.Next() {
		f := &threadFacts{Clients: map[string]int{}}
		if err := rows.Scan(&f.ID, &f.Counter, &f.Messages, &f.MaxSeq, &f.MinSeq, &f.Archived, &f.Metadata); err != nil {
			rows.Close()
			return nil, fmt.Errorf("threadsuite: probe %s: read threads: %w", r.probe, err)
		}
		out[f.ID] = f
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("threadsuite: probe %s: read threads: %w", r.probe, err)
	}
	rows, err = r.plain.QueryContext(ctx, `
SELECT m.thread_id::text, m.client_message_id, count(*)
FROM messages m JOIN threads t ON t.id = m.thread_id
WHERE t.user_id = $1 AND m.client_message_id IS NOT NULL GROUP BY 1, 2`, user)
	if err != nil {
		return nil, fmt.Errorf("threadsuite: probe %s: read messages: %w", r.probe, err)
	}
	defer rows.Close()
	for rows.Next() {
		var tid, cid string
		var n int
		if err := rows.Scan(&tid, &cid, &n); err != nil {
			return nil, fmt.Errorf("threadsuite: probe %s: read messages: %w", r.probe, err)
		}
		if f := out[tid]; f != nil {
			f.Clients[cid] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("threadsuite: probe %s: read messages: %w", r.probe, err)
	}
	return out, nil
}

// checkCounts checks the invariants every thread must keep: the counter
// equals the number of messages, seq runs 1..n without a gap, and no client
// message id is stored twice.
func (r *probeRun) checkCounts(fs map[string]*threadFacts) {
	for _, id := range sortedKeys(fs) {
		f := fs[id]
		if f.Counter != f.Messages {
			r.find("count", "thread %s: message_count=%d but %d messages stored", id, f.Counter, f.Messages)
		}
		if f.Messages > 0 && (f.MinSeq != 1 || f.MaxSeq != f.Messages) {
			r.find("seq", "thread %s: %d messages with seq %d..%d; want 1..%d gap-free", id, f.Messages, f.MinSeq, f.MaxSeq, f.Messages)
		}
		for _, cid := range sortedKeys(f.Clients) {
			if n := f.Clients[cid]; n > 1 {
				r.find("duplicate", "thread %s: client message id %q stored %d times; want once (a retried send must be idempotent)", id, cid, n)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// rngFor returns a generator for one worker of the run, derived from the seed.
func (r *probeRun) rngFor(worker int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(r.cfg.Seed), uint64(worker)+1))
}

// quiet is the handlers' logger in probes: rollbacks after injected faults
// are expected there, and the findings say what matters.
var quiet = slog.New(slog.DiscardHandler)

// probeOp is one handlers operation as the pool probe runs it.
type probeOp struct {
	name string
	fn   func(ctx context.Context, svc *handlers.Service, user, thread string, n int) error
}

// probeOps are the eight operations, the delete last.
var probeOps = []probeOp{
	{OpListThreads, func(ctx context.Context, s *handlers.Service, u, _ string, _ int) error {
		_, err := s.ListThreads(ctx, u, handlers.Page{Limit: 10})
		return err
	}},
	{OpCreateThread, func(ctx context.Context, s *handlers.Service, u, _ string, n int) error {
		_, err := s.CreateThread(ctx, u, handlers.CreateThreadInput{Title: fmt.Sprintf("created by probe %d", n)})
		return err
	}},
	{OpGetThread, func(ctx context.Context, s *handlers.Service, u, t string, _ int) error {
		_, err := s.GetThread(ctx, u, t)
		return err
	}},
	{OpUpdateThread, func(ctx context.Context, s *handlers.Service, u, t string, n int) error {
		_, err := s.UpdateThread(ctx, u, t, handlers.UpdateThreadInput{Metadata: map[string]any{fmt.Sprintf("k%d", n): n}})
		return err
	}},
	{OpAutoRename, func(ctx context.Context, s *handlers.Service, u, t string, _ int) error {
		_, err := s.AutoRename(ctx, u, t)
		return err
	}},
	{OpGetMessages, func(ctx context.Context, s *handlers.Service, u, t string, _ int) error {
		_, err := s.GetMessages(ctx, u, t, handlers.Page{Limit: 10})
		return err
	}},
	{OpSendMessage, func(ctx context.Context, s *handlers.Service, u, t string, n int) error {
		_, err := s.SendMessage(ctx, u, t, handlers.SendMessageInput{Content: fmt.Sprintf("probe message %d", n), ClientMessageID: fmt.Sprintf("pool-%d", n)})
		return err
	}},
	{OpDeleteThread, func(ctx context.Context, s *handlers.Service, u, t string, _ int) error {
		return s.DeleteThread(ctx, u, t)
	}},
}

// probePool runs each operation from PoolSize goroutines at once on a pool of
// PoolSize connections (default 2), two rounds: an operation that takes a
// second connection while it holds one waits for ever on such a pool.
func probePool(ctx context.Context, r *probeRun) {
	size := r.poolSize(2)
	s := r.setup(size, "pool", size, 2)
	if s == nil {
		return
	}
	for round := 0; round < 2; round++ {
		for _, op := range probeOps {
			if op.name == OpDeleteThread && round == 0 {
				continue
			}
			together(size, func(g int) {
				err := r.do(ctx, op.name, func(ctx context.Context) error {
					return op.fn(ctx, s.svc, s.user, s.ids[g], round*100+g)
				})
				if err != nil {
					r.unexpected(ctx, "%s failed on a pool of %d with no fault armed: %v", op.name, size, err)
				}
			})
			if !r.live(ctx) {
				return
			}
		}
	}
	if fs := r.settledFacts(ctx, s.user); fs != nil {
		r.checkCounts(fs)
	}
}

// mixedLedger is what the mixed probe's workers were told.
type mixedLedger struct {
	mu        sync.Mutex
	acked     map[string]string // client id -> thread: acknowledged sends
	absent    map[string]string // client id -> thread: failed, no commit in the trace
	keys      map[string]string // metadata key -> thread: acknowledged patches
	keyAbsent map[string]string // metadata key -> thread: failed, no commit in the trace
}

// probeFaultRates are the random faults of the mixed probe: the driver-level
// kinds whose effect on a real server is what production shows (see safePlan).
var probeFaultRates = faults.Rates{
	Backend: faults.Postgres,
	Kinds: map[faults.Kind]float64{
		faults.KindError:   0.03,
		faults.KindPgErr:   0.03,
		faults.KindBadConn: 0.03,
		faults.KindCancel:  0.02,
		faults.KindLatency: 0.03,
	},
	Max: 1,
}

// safePlan drops the rules whose injected failure leaves the real server in a
// state production cannot reach, which the server check would then blame on
// the handlers: an error injected at commit or rollback does not call the
// driver, so the server transaction stays open behind a transaction
// database/sql has ended (the pgx conn is discarded only when next reused).
// At those steps only badconn (the conn is discarded, the server rolls back)
// and latency are kept.
func safePlan(p faults.Plan, t faults.Trace) faults.Plan {
	var out faults.Plan
	for _, rule := range p.Rules {
		if rule.Step > 0 && rule.Step <= len(t) {
			switch t[rule.Step-1].Kind {
			case faults.StepCommit, faults.StepRollback:
				if rule.Fault.Kind != faults.KindBadConn && rule.Fault.Kind != faults.KindLatency {
					continue
				}
			}
		}
		out.Rules = append(out.Rules, rule)
	}
	return out
}

// committed reports whether the trace holds a commit the driver carried out
// without error.
func committed(t faults.Trace) bool {
	for _, s := range t {
		if s.Kind == faults.StepCommit && s.Err == nil && s.Fault == nil {
			return true
		}
	}
	return false
}

// probeMixed runs Workers goroutines of Ops mixed operations each on three
// shared threads, each worker on its own instrumented pool (PoolSize, default
// 2) so that a fault plan's step numbers are the worker's own.
func probeMixed(ctx context.Context, r *probeRun) {
	user := r.probeUser("mixed")
	ids, err := r.newThreads(user, 3, 1)
	if r.setupFailed(err) {
		return
	}
	l := &mixedLedger{acked: map[string]string{}, absent: map[string]string{},
		keys: map[string]string{}, keyAbsent: map[string]string{}}
	workers(r.cfg.Workers, func(w int) { r.mixedWorker(ctx, w, user, ids, l) })
	fs := r.settledFacts(ctx, user)
	if fs == nil {
		return
	}
	r.checkCounts(fs)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.check(r, fs)
}

// check compares what the workers were told with what is stored: every
// acknowledged send and patch is there, none that failed before any commit.
func (l *mixedLedger) check(r *probeRun, fs map[string]*threadFacts) {
	r.checkStored(fs, l.acked, "acknowledged", "send %s was acknowledged but is not stored on thread %s")
	for _, cid := range sortedKeys(l.absent) {
		if f := fs[l.absent[cid]]; f != nil && f.Clients[cid] != 0 {
			r.find("all-or-nothing", "send %s failed before any commit but is stored on thread %s", cid, l.absent[cid])
		}
	}
	r.checkKeys(fs, l.keys, "lost-update", "metadata patch %s was acknowledged but thread %s does not have the key")
	for _, k := range sortedKeys(l.keyAbsent) {
		if f := fs[l.keyAbsent[k]]; f != nil && hasKey(f, k) {
			r.find("all-or-nothing", "metadata patch %s failed before any commit but thread %s has the key", k, l.keyAbsent[k])
		}
	}
}

// checkStored reports every send of acked (client id -> thread) not stored
// exactly once on its thread, as check with format (client id, thread).
func (r *probeRun) checkStored(fs map[string]*threadFacts, acked map[string]string, check, format string) {
	for _, cid := range sortedKeys(acked) {
		if f := fs[acked[cid]]; f == nil || f.Clients[cid] != 1 {
			r.find(check, format, cid, acked[cid])
		}
	}
}

// checkKeys reports every patch of keys (key -> thread) whose key the
// thread's metadata lacks, as check with format (key, thread).
func (r *probeRun) checkKeys(fs map[string]*threadFacts, keys map[string]string, check, format string) {
	for _, k := range sortedKeys(keys) {
		if f := fs[keys[k]]; f == nil || !hasKey(f, k) {
			r.find(check, format, k, keys[k])
		}
	}
}

// hasKey reports whether the thread's metadata (JSON text) has key k.
func hasKey(f *threadFacts, k string) bool {
	var m map[string]any
	if err := json.Unmarshal([]byte(f.Metadata), &m); err != nil {
		return strings.Contains(f.Metadata, `"`+k+`"`)
	}
	_, ok := m[k]
	return ok
}

func (r *probeRun) mixedWorker(ctx context.Context, w int, user string, ids []string, l *mixedLedger) {
	p, err := r.pool(r.poolSize(2))
	if r.setupFailed(err) {
		return
	}
	svc := p.service()
	rng := r.rngFor(w)
	traces := map[string]faults.Trace{}
	kinds := []string{OpSendMessage, OpSendMessage, OpSendMessage, OpUpdateThread, OpUpdateThread,
		OpGetThread, OpListThreads, OpGetMessages, OpAutoRename}
	for i := range r.opsWhileLive(ctx) {
		kind := kinds[rng.IntN(len(kinds))]
		tid := ids[rng.IntN(len(ids))]
		armed := false
		if tr, ok := traces[kind]; ok && rng.Float64() < r.cfg.FaultRate {
			plan := safePlan(faults.RandomPlan(rng.Int64(), tr, probeFaultRates), tr)
			p.inj.Arm(plan)
			armed = len(plan.Rules) > 0
		} else {
			p.inj.Reset()
		}
		cid := fmt.Sprintf("w%d-op%d", w, i)
		ictx, cancel := p.inj.Context(ctx)
		err := r.do(ictx, kind, func(ctx context.Context) error {
			switch kind {
			case OpSendMessage:
				_, err := svc.SendMessage(ctx, user, tid, handlers.SendMessageInput{Content: "mixed " + cid, ClientMessageID: cid})
				return err
			case OpUpdateThread:
				_, err := svc.UpdateThread(ctx, user, tid, handlers.UpdateThreadInput{Metadata: map[string]any{cid: i}})
				return err
			case OpGetThread:
				_, err := svc.GetThread(ctx, user, tid)
				return err
			case OpListThreads:
				_, err := svc.ListThreads(ctx, user, handlers.Page{Limit: 10})
				return err
			case OpGetMessages:
				_, err := svc.GetMessages(ctx, user, tid, handlers.Page{Limit: 50})
				return err
			default:
				_, err := svc.AutoRename(ctx, user, tid)
				return err
			}
		})
		cancel()
		tr, fired := p.inj.Trace(), r.countFired(p.inj)
		if _, ok := traces[kind]; !ok && !armed && err == nil {
			traces[kind] = tr
		}
		if err != nil && len(fired) == 0 {
			r.unexpected(ctx, "worker %d op %d: %s failed with no fault fired: %v", w, i, kind, err)
		}
		l.mu.Lock()
		switch {
		case kind == OpSendMessage && err == nil:
			l.acked[cid] = tid
		case kind == OpSendMessage && !committed(tr):
			l.absent[cid] = tid
		case kind == OpUpdateThread && err == nil:
			l.keys[cid] = tid
		case kind == OpUpdateThread && !committed(tr):
			l.keyAbsent[cid] = tid
		}
		l.mu.Unlock()
	}
}

// probeLostUpdate patches one thread's metadata from Workers goroutines at
// once, a distinct key each, for Ops rounds (at most 5): every acknowledged
// key must be in the metadata afterwards.
func probeLostUpdate(ctx context.Context, r *probeRun) {
	n := r.cfg.Workers
	s := r.setup(r.poolSize(n), "lost", 1, 0)
	if s == nil {
		return
	}
	var mu sync.Mutex
	var acked []string
	for round := 0; round < min(r.cfg.Ops, 5) && r.live(ctx); round++ {
		together(n, func(g int) {
			key := fmt.Sprintf("r%d-g%d", round, g)
			err := r.do(ctx, OpUpdateThread, func(ctx context.Context) error {
				_, err := s.svc.UpdateThread(ctx, s.user, s.ids[0], handlers.UpdateThreadInput{Metadata: map[string]any{key: g}})
				return err
			})
			if err != nil {
				r.unexpected(ctx, "patch %s failed with no fault armed: %v", key, err)
				return
			}
			mu.Lock()
			acked = append(acked, key)
			mu.Unlock()
		})
	}
	fs := r.settledFacts(ctx, s.user)
	if fs == nil {
		return
	}
	f := fs[s.ids[0]]
	var lost []string
	for _, k := range acked {
		if f == nil || !hasKey(f, k) {
			lost = append(lost, k)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		r.find("lost-update", "%d of %d acknowledged concurrent metadata patches lost (keys %s missing); want every key: a patch must merge in SQL, not read-modify-write in Go",
			len(lost), len(acked), strings.Join(lost, " "))
	}
}

// probeSendOrder sends Ops messages from each of Workers goroutines to one
// thread, each send retried once with its client id: n distinct messages with
// seq 1..n, the retry answered with the stored message.
func probeSendOrder(ctx context.Context, r *probeRun) {
	n := r.cfg.Workers
	s := r.setup(r.poolSize(n), "order", 1, 0)
	if s == nil {
		return
	}
	var mu sync.Mutex
	acked := map[string]int64{}
	seqs := map[int64]string{}
	together(n, func(g int) {
		for i := range r.opsWhileLive(ctx) {
			cid := fmt.Sprintf("g%d-%d", g, i)
			in := handlers.SendMessageInput{Content: "ordered " + cid, ClientMessageID: cid}
			send := func(what string, m *handlers.Message) error {
				return r.do(ctx, what, func(ctx context.Context) (err error) {
					*m, err = s.svc.SendMessage(ctx, s.user, s.ids[0], in)
					return err
				})
			}
			var first, again handlers.Message
			err := send(OpSendMessage, &first)
			if err == nil {
				err = send(OpSendMessage+" (retry)", &again)
			}
			if err != nil {
				r.unexpected(ctx, "send %s failed with no fault armed: %v", cid, err)
				continue
			}
			if again.ID != first.ID || again.Seq != first.Seq {
				r.find("idempotency", "send %s retried with its client id: got message %s seq %d; want the stored %s seq %d",
					cid, again.ID, again.Seq, first.ID, first.Seq)
			}
			mu.Lock()
			acked[cid] = first.Seq
			if prev, ok := seqs[first.Seq]; ok {
				r.find("seq", "sends %s and %s both got seq %d", prev, cid, first.Seq)
			}
			seqs[first.Seq] = cid
			mu.Unlock()
		}
	})
	fs := r.settledFacts(ctx, s.user)
	if fs == nil {
		return
	}
	r.checkCounts(fs)
	f := fs[s.ids[0]]
	if f != nil && f.Messages != int64(len(acked)) {
		r.find("count", "%d sends acknowledged (each retried once) but %d messages stored; want exactly one per send", len(acked), f.Messages)
	}
	for _, cid := range sortedKeys(acked) {
		if f == nil || f.Clients[cid] != 1 {
			r.find("acknowledged", "send %s was acknowledged but is not stored under its client id", cid)
		}
	}
}

// sendRecord is one send of the delete-vs-send probe, in time since the probe
// began.
type sendRecord struct {
	cid        string
	start, end time.Duration
	err        error
}

// probeDeleteVsSend has Workers goroutines send to one thread while another
// deletes it after a seeded number of acknowledged sends: once the delete is
// acknowledged, no send that begins afterwards may succeed or be stored.
func probeDeleteVsSend(ctx context.Context, r *probeRun) {
	n := r.cfg.Workers
	s := r.setup(r.poolSize(n+1), "delete", 1, 0)
	if s == nil {
		return
	}
	deleteAfter := int64(1 + r.rngFor(0).IntN(max(1, n*r.cfg.Ops/2)))
	t0 := time.Now()
	var ackedN atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	var delAck atomic.Int64      // time since t0 the delete was acknowledged; 0: not yet
	var atArchive map[string]int // the client ids stored right after the delete was acknowledged
	var mu sync.Mutex
	var recs []sendRecord
	var deleter sync.WaitGroup
	deleter.Go(func() {
		select {
		case <-reached:
		case <-ctx.Done():
			return
		}
		err := r.do(ctx, OpDeleteThread, func(ctx context.Context) error { return s.svc.DeleteThread(ctx, s.user, s.ids[0]) })
		if err != nil {
			r.unexpected(ctx, "delete racing sends failed: %v", err)
			return
		}
		delAck.Store(int64(time.Since(t0)))
		// What is stored once the delete is acknowledged is all there will
		// ever be: a send that lands later slipped past the archive.
		if fs, err := r.facts(ctx, s.user); err == nil && fs[s.ids[0]] != nil {
			atArchive = maps.Clone(fs[s.ids[0]].Clients)
		}
	})
	workers(n, func(g int) {
		after := 0 // sends tried after a not-found
		for i := range r.opsWhileLive(ctx) {
			if after >= 2 {
				break
			}
			rec := sendRecord{cid: fmt.Sprintf("g%d-%d", g, i), start: time.Since(t0)}
			rec.err = r.do(ctx, OpSendMessage, func(ctx context.Context) error {
				_, err := s.svc.SendMessage(ctx, s.user, s.ids[0], handlers.SendMessageInput{Content: "racing " + rec.cid, ClientMessageID: rec.cid})
				return err
			})
			rec.end = time.Since(t0)
			switch {
			case rec.err == nil:
				if ackedN.Add(1) >= deleteAfter {
					once.Do(func() { close(reached) })
				}
			case errors.Is(rec.err, handlers.ErrNotFound):
				after++
			default:
				r.unexpected(ctx, "send %s failed with no fault armed: %v", rec.cid, rec.err)
			}
			mu.Lock()
			recs = append(recs, rec)
			mu.Unlock()
		}
		once.Do(func() { close(reached) }) // never wait for sends that will not come
	})
	deleter.Wait()
	fs := r.settledFacts(ctx, s.user)
	if fs == nil {
		return
	}
	r.checkCounts(fs)
	checkArchive(r, fs[s.ids[0]], time.Duration(delAck.Load()), atArchive, recs)
}

// checkArchive checks the sends racing a delete acknowledged at da (time
// since the probe began; 0: the delete failed) against the thread as stored,
// and as it was stored right after da (atArchive, client id -> messages; nil:
// not read): archived; no send begun after da succeeded or is stored; no
// message stored after da; every acknowledged send is stored once; no
// refused send is stored.
func checkArchive(r *probeRun, f *threadFacts, da time.Duration, atArchive map[string]int, recs []sendRecord) {
	if da == 0 {
		return // the delete failed: reported where it ran
	}
	if f == nil || !f.Archived {
		r.find("archive", "the delete was acknowledged but the thread is not archived")
	}
	if f != nil && atArchive != nil {
		for _, cid := range slices.Sorted(maps.Keys(f.Clients)) {
			if f.Clients[cid] > atArchive[cid] {
				r.find("archive", "send %s was stored after the delete was acknowledged (the archive point); want nothing stored once the thread is archived", cid)
			}
		}
	}
	for _, rec := range recs {
		late := rec.start > da
		if rec.err == nil && late {
			r.find("archive", "send %s began %s after the delete was acknowledged and succeeded; want not found", rec.cid, (rec.start - da).Round(time.Microsecond))
		}
		if late && f != nil && f.Clients[rec.cid] > 0 {
			r.find("archive", "send %s began after the delete was acknowledged but is stored on the archived thread", rec.cid)
		}
		if rec.err == nil && (f == nil || f.Clients[rec.cid] != 1) {
			r.find("acknowledged", "send %s was acknowledged but is not stored", rec.cid)
		}
		if rec.err != nil && f != nil && f.Clients[rec.cid] > 0 {
			r.find("all-or-nothing", "send %s was refused (%v) but is stored", rec.cid, rec.err)
		}
	}
}

// probeFinishedTx sends and patches from Workers goroutines with each
// request's context cancelled after a seeded random delay, so cancellation
// races the unit of work and database/sql's rollback of its transaction (the
// handlers then hold a finished transaction): an acknowledged write must be
// stored, and nothing may be left open.
func probeFinishedTx(ctx context.Context, r *probeRun) {
	n := r.cfg.Workers
	s := r.setup(r.poolSize(n), "finished", 2, 0)
	if s == nil {
		return
	}
	var mu sync.Mutex
	ackedSends := map[string]string{}
	ackedKeys := map[string]string{}
	workers(n, func(g int) {
		rng := r.rngFor(g)
		for i := range r.opsWhileLive(ctx) {
			cid := fmt.Sprintf("g%d-%d", g, i)
			tid := s.ids[rng.IntN(len(s.ids))]
			send := rng.IntN(3) > 0
			delay := time.Duration(rng.IntN(60000)) * time.Microsecond
			rctx, cancel := context.WithCancel(ctx)
			timer := time.AfterFunc(delay, cancel)
			err := r.do(rctx, "cancelled request", func(ctx context.Context) error {
				if send {
					_, err := s.svc.SendMessage(ctx, s.user, tid, handlers.SendMessageInput{Content: "cancelled " + cid, ClientMessageID: cid})
					return err
				}
				_, err := s.svc.UpdateThread(ctx, s.user, tid, handlers.UpdateThreadInput{Metadata: map[string]any{cid: i}})
				return err
			})
			timer.Stop()
			cancel()
			if err != nil {
				if !cancelledUnderWay(err) {
					r.unexpected(ctx, "request %s cancelled after %s failed with an unexpected error: %v", cid, delay, err)
				}
				continue
			}
			mu.Lock()
			if send {
				ackedSends[cid] = tid
			} else {
				ackedKeys[cid] = tid
			}
			mu.Unlock()
		}
	})
	fs := r.settledFacts(ctx, s.user)
	if fs == nil {
		return
	}
	r.checkCounts(fs)
	r.checkStored(fs, ackedSends, "acknowledged", "send %s was acknowledged but is not stored on thread %s (its transaction had ended: a commit error was lost)")
	r.checkKeys(fs, ackedKeys, "acknowledged", "patch %s was acknowledged but thread %s does not have it (its transaction had ended: a commit error was lost)")
}

// cancelledUnderWay reports an error a request cancelled while under way may
// get: the cancellation itself, its transaction already ended, or its
// connection closed under a statement (pgx closes the connection it cannot
// cancel cleanly).
func cancelledUnderWay(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, sql.ErrTxDone) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "conn closed") || strings.Contains(s, "connection closed") ||
		strings.Contains(s, "timeout: context already done") || strings.Contains(s, "context canceled")
}

// probeCancellation runs operations whose context's deadline passes while a
// statement waits (an injected latency honouring the context): each must
// fail. One that succeeds ran its statements on a context that is never
// cancelled.
func probeCancellation(ctx context.Context, r *probeRun) {
	s := r.setup(2, "cancel", 1, 1)
	if s == nil {
		return
	}
	const deadline = 50 * time.Millisecond
	latency := 8 * deadline
	for _, op := range probeOps {
		if op.name == OpDeleteThread || ctx.Err() != nil {
			continue
		}
		plan := faults.Plan{Rules: []faults.Rule{{Match: faults.StepQuery, Nth: 1, Fault: faults.Fault{Kind: faults.KindLatency, Delay: latency}}}}
		s.pool.inj.Arm(plan)
		dctx, cancel := context.WithTimeout(ctx, deadline)
		err := r.do(dctx, op.name, func(ctx context.Context) error { return op.fn(ctx, s.svc, s.user, s.ids[0], 7) })
		cancel()
		if len(r.countFired(s.pool.inj)) == 0 {
			continue // the operation did not reach a query (validation): nothing to say
		}
		if err == nil {
			r.find("cancellation", "%s succeeded although its deadline (%s) passed while its first query waited (injected latency %s): the database did not get the request's context, so a cancelled request keeps running its statements",
				op.name, deadline, latency)
		}
	}
	s.pool.inj.Reset()
}

// externalGenerator is a title generator that marks its call as external to
// the tracker and looks at the server meanwhile.
type externalGenerator struct {
	r       *probeRun
	tracker *leakcheck.Tracker
}

func (g externalGenerator) GenerateTitle(ctx context.Context, first string) (string, error) {
	var title string
	err := g.tracker.External(ctx, "title generator", func(ctx context.Context) error {
		if g.r.env.Admin != nil {
			// One reading (a millisecond to settle): the call is under way now.
			if err := leakcheck.FindServer(ctx, g.r.env.Admin, g.r.env.AppName, leakcheck.WithTimeout(time.Millisecond)); err != nil {
				g.r.find("server", "while the title generator ran: %v", err)
			}
		}
		var err error
		title, err = handlers.FirstWordsTitle{}.GenerateTitle(ctx, first)
		return err
	})
	return title, err
}

// probeExternalCall runs AutoRename with a title generator that marks its
// call external (leakcheck.Tracker.External) and looks at the server while it
// runs: no transaction may be open across it.
func probeExternalCall(ctx context.Context, r *probeRun) {
	s := r.setup(2, "external", 1, 1)
	if s == nil {
		return
	}
	svc := s.pool.service(handlers.WithTitleGenerator(externalGenerator{r: r, tracker: s.pool.tracker}))
	err := r.do(ctx, OpAutoRename, func(ctx context.Context) error {
		_, err := svc.AutoRename(ctx, s.user, s.ids[0])
		return err
	})
	if err != nil {
		r.find("error", "AutoRename failed with no fault armed: %v", err)
	}
	if err := leakcheck.FindLongTransactions(ctx, s.pool.tracker); err != nil {
		r.find("long-transaction", "%v", err)
	}
}

// blockingNotifier is a slow notifier that honours its context: it returns
// when its context ends (or when the probe releases it).
type blockingNotifier struct {
	entered chan struct{}
	once    sync.Once
	release chan struct{}
	wg      sync.WaitGroup
}

func (n *blockingNotifier) ThreadRenamed(ctx context.Context, _ handlers.Thread) error {
	n.wg.Add(1)
	defer n.wg.Done()
	n.once.Do(func() { close(n.entered) })
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-n.release:
		return nil
	}
}

// probeNotify runs AutoRename with a notifier that waits for its context to
// end, and ends the request once the notifier was called: no goroutine of the
// request may outlive it.
func probeNotify(ctx context.Context, r *probeRun) {
	s := r.setup(2, "notify", 1, 1)
	if s == nil {
		return
	}
	n := &blockingNotifier{entered: make(chan struct{}), release: make(chan struct{})}
	defer func() {
		close(n.release)
		n.wg.Wait()
	}()
	svc := s.pool.service(handlers.WithNotifier(n))
	baseline := goleak.IgnoreCurrent()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- r.do(rctx, OpAutoRename, func(ctx context.Context) error {
			_, err := svc.AutoRename(ctx, s.user, s.ids[0])
			return err
		})
	}()
	var opErr error
	select {
	case <-n.entered:
		cancel() // the request ends
		opErr = <-errc
	case opErr = <-errc:
		select {
		case <-n.entered:
		case <-time.After(r.cfg.OpTimeout):
		}
		cancel()
	}
	if opErr != nil {
		r.find("error", "AutoRename failed: %v", opErr)
		return
	}
	if err := leakcheck.FindGoroutines(ctx, baseline, goleak.IgnoreTopFunction("time.Sleep")); err != nil {
		r.find("goroutines", "a goroutine of AutoRename outlived the request (it was not given the request's context):\n%v", err)
	}
}

// probeErrorPath fails each write operation at its first statement inside
// the unit of work and checks the pool and the server right after it
// returned, while its request's context is still live: once the context
// ends, database/sql rolls back a transaction the code forgot, which hides
// the leak from any later check.
func probeErrorPath(ctx context.Context, r *probeRun) {
	s := r.setup(2, "errpath", 1, 1)
	if s == nil {
		return
	}
	p := s.pool
	plan := faults.MustParsePlan("match=query#1:error,match=exec#1:error")
	for _, op := range probeOps {
		switch op.name {
		case OpListThreads, OpGetThread, OpGetMessages:
			continue
		}
		if ctx.Err() != nil {
			return
		}
		p.inj.Arm(plan)
		var opErr error
		_ = r.do(ctx, op.name, func(ctx context.Context) error {
			opErr = op.fn(ctx, s.svc, s.user, s.ids[0], 9)
			// The request is still live: check now.
			if err := poolLeakWhileLive(ctx, p.db, leakcheck.WithTracker(p.tracker)); err != nil {
				r.find("pool", "%s failed (%v) and still held a connection while its request was live: %v", op.name, opErr, err)
			}
			if r.env.Admin != nil {
				if err := leakcheck.FindServer(ctx, r.env.Admin, r.env.AppName, leakcheck.WithTimeout(livePoll)); errors.Is(err, leakcheck.ErrLeak) {
					r.find("server", "%s failed (%v) and left its session open while its request was live: %v", op.name, opErr, err)
				}
			}
			return opErr
		})
		if len(r.countFired(p.inj)) > 0 && opErr == nil {
			r.find("error", "%s succeeded although a statement of its unit failed", op.name)
		}
	}
	p.inj.Reset()
}

// livePoll is how long a check made while the request is still live polls.
const livePoll = 300 * time.Millisecond

// poolLeakWhileLive checks db's pool right after an operation returned,
// while its request is still live: once the context ends, database/sql rolls
// back a transaction the code forgot, which hides the leak from any later
// check. Only a leak (leakcheck.ErrLeak) is returned, not a check that could
// not run.
func poolLeakWhileLive(ctx context.Context, db *sql.DB, opts ...leakcheck.Option) error {
	if err := leakcheck.FindPool(ctx, db, append(opts, leakcheck.WithTimeout(livePoll))...); errors.Is(err, leakcheck.ErrLeak) {
		return err
	}
	return nil
}
