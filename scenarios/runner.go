package scenarios

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// ErrConfig is wrapped by NewRunner and Run for a configuration that cannot run.
var ErrConfig = errors.New("scenarios: bad config")

// Fixture is what an Operation's Setup prepares for one case and hands to its
// Run and State: ids, inputs, anything the operation needs.
type Fixture any

// Operation is one piece of database code the matrix puts through every fault
// at every step. Nothing in it is specific to the thread handlers.
type Operation struct {
	// Name names the operation in case names and golden files
	// ("UpdateThread"); letters, digits, '-' and '_' only.
	Name string
	// Setup prepares fresh state for one case on a plain (un-instrumented)
	// pool and returns what Run and State need. On the Sqlmock backend db is
	// nil: return placeholder values (the rows Run reads come from the golden
	// trace).
	Setup func(ctx context.Context, db *sql.DB) (Fixture, error)
	// Run is the code under test; db is the instrumented pool of the case.
	// ctx carries the case's deadline and is cancelled by a cancel fault:
	// pass it down.
	Run func(ctx context.Context, db *sql.DB, fx Fixture) error
	// RunPgx is the code under test when it talks to pgx directly (a
	// *pgxpool.Pool, a pgx.Tx, sqlc's pgx DBTX): set exactly one of Run and
	// RunPgx. pool is the case's instrumented pool (opened from Config.DSN,
	// its wire recorded and faulted by a faults.PgxInjector); code on a pgx.Tx
	// or a DBTX begins it, or takes it, from pool. Postgres only: sqlmock
	// mocks database/sql, which pgx code does not go through. Setup and State
	// still work on Config.DB.
	RunPgx func(ctx context.Context, pool *pgxpool.Pool, fx Fixture) error
	// State reads back, on the plain pool, the state Run touches, normalised
	// so that two runs on equal fixtures read the same string (no
	// timestamps, no generated ids). Nil: the operation writes nothing, and
	// only the error and leak invariants are checked.
	State func(ctx context.Context, db *sql.DB, fx Fixture) (string, error)
	// Retries reports whether Run retries err by itself, so that one such
	// fault must end in success. Nil: Run retries nothing.
	Retries func(err error) bool
}

// Config says where and how the matrix runs.
type Config struct {
	// Backend is Sqlmock or Postgres.
	Backend faults.Backend

	// DSN (Postgres) opens the instrumented pool with pgx stdlib; Connector,
	// if set, is used instead.
	DSN       string
	Connector driver.Connector
	// Wire (Postgres, with Connector) is the faults.Wire the connector's
	// network connections go through — installed with Wire.Install on a pgx
	// config, or with Wire.WrapConn in another driver's dialer (lib/pq:
	// Connector.Dialer) — so that the wire faults (cut, cut-after,
	// ambiguous) apply. With DSN the runner installs its own.
	Wire *faults.Wire
	// DB (Postgres) is the plain pool fixtures are set up and state is read
	// on. When the runner ends the sessions of AppName (after a case with
	// findings, or a terminate fault) it also drops DB's idle connections and
	// leaves DB.SetMaxIdleConns at 2.
	DB *sql.DB
	// Admin and AppName (Postgres) enable the server check: no backend of
	// AppName idle in transaction, aborted or active, no lock held by one.
	// They also let the runner clear a case's leftovers (terminating the
	// backends of AppName) so that one broken case does not spoil the next.
	Admin   *sql.DB
	AppName string

	// Golden (Sqlmock) holds the golden traces, one "<operation>.trace" file
	// per operation, as RecordGolden returns them and GoldenTests writes
	// them (e.g. os.DirFS("testdata")). Required on Sqlmock.
	Golden fs.FS

	// Timeout bounds each case's run of the operation; a run still going
	// as long again (at least 2s) after it is a finding with the goroutine dump. Setup, warming the
	// pool and clearing the server around it get at least 10s however short
	// Timeout is (a connection alone can take longer on a loaded machine).
	// Zero: 10s.
	Timeout time.Duration
	// Disconnect plays a client that goes away: only the fault "cancel" is
	// armed at each step, and the error need not reach the caller.
	Disconnect bool
	// Faults, if set, replaces the faults tried at a step: given the step's
	// kind (e.g. faults.StepCommit), it returns the faults to try there.
	// Nil: faults.Applicable for the backend — the wire
	// kinds only with a DSN (the runner installs a faults.Wire on it), the
	// server kinds only with a DSN and Admin — without panic except at
	// "next", and without lock and stmt-timeout on a table the transaction
	// has touched already (see faultsAt).
	Faults func(k faults.StepKind) []faults.Fault
	// Only, if set, keeps the cases it returns true for.
	Only func(Case) bool
	// Replay returns the command that replays one case; nil: the go test
	// command of RunTests, or none outside a test.
	Replay func(Case) string
	// NoGoroutineCheck turns the goroutine check off. The check counts
	// the goroutines the case's own run started (a leakcheck.Scope on the
	// goroutine that calls the operation, inherited by every goroutine it
	// starts), so other goroutines of the process, parallel cases and
	// parallel tests included, never count against it.
	NoGoroutineCheck bool
	// CheckTimeout bounds each leak check's polling; zero: 2s.
	CheckTimeout time.Duration
	// NoCancelBlocked leaves out the fault "cancel-blocked", tried by
	// default on Postgres (with DSN and Admin) at every exec and query step
	// whose SQL names a table the open transaction has not touched: another
	// session locks the table, and once the step waits for that lock on the
	// server the caller's context is cancelled; the call must return within
	// faults.CancelBlockedBound with the cancellation, its statement no
	// longer waiting on the server. A call that ignores the caller's context
	// is a context-honoured finding naming it.
	NoCancelBlocked bool
	// NoSessionCheck turns the session-state check off (Postgres: every
	// idle connection of the case's pool must carry the session state a
	// fresh connection carries — no session-level SET, advisory lock, temp
	// table, LISTEN or prepared statement left for the next user).
	NoSessionCheck bool
	// Parallel is how many cases Run and RunTests run at once (RunTests
	// marks each case's subtest parallel, so go test's -parallel bounds it
	// too); 0 or 1: one after another. Each case runs on an instrumented
	// pool and application_name of its own, and its checks see that case
	// alone: the verdicts are those of the sequential run. Needs Config.DSN
	// on Postgres (the runner names each pool's sessions); DefaultParallel
	// is the machine's CPU count.
	Parallel int
}

// Runner runs the matrix of one operation on one backend. Create it with
// NewRunner. RunCase may be called from several goroutines at once: each
// call runs on a lane of its own (an instrumented pool, injector and, on
// Postgres with a DSN, application_name of its own), so that the pool,
// server and goroutine checks of one case never see another's (see
// RunCases). With a Config.Connector the runner cannot give a lane an
// application_name of its own: run its cases one at a time.
type Runner struct {
	cfg Config
	op  Operation

	// Postgres: what every lane is made from.
	connCfg *pgx.ConnConfig // DSN given: each lane's connections, under a name of their own
	pxBase  *pgxpool.Config // RunPgx: each lane's pool configuration
	server  *faults.Server  // server kinds (DSN and Admin given)
	lockDB  *sql.DB         // where the lock kinds take their locks
	hasWire bool            // the lanes' connections go through a faults.Wire

	lanesMu sync.Mutex
	lanes   []*lane           // every lane made, for Close
	free    []*lane           // the lanes no case runs on
	live    map[*lane]Fixture // Postgres: the fixture of the case under way on each lane
	// gate: a case whose fault locks a table from another session holds it
	// alone (every other case touching the table would wait for the lock),
	// every other case shares it.
	gate sync.RWMutex

	// Sqlmock: the golden trace's expectation-bearing steps.
	expect []gstep

	unavailable []string // fault families left out on this configuration, and why

	session *leakcheck.Session // Postgres: a fresh connection's session state, read at recording

	broken error        // the clean recording failed: only the clean case runs
	clean  faults.Trace // warm clean run: what the cases target
	cold   faults.Trace // clean run on an empty pool: for the connect cases
	before string
	after  string
}

// NewRunner checks the configuration and records clean runs of op (on a warm
// pool, and on an empty one for the connect cases): the trace and the before
// and after states. An operation that fails with no fault armed is not an
// error here: see Broken.
func NewRunner(ctx context.Context, cfg Config, op Operation) (*Runner, error) {
	if err := checkConfig(cfg, op); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	if op.RunPgx != nil {
		return newPgxRunner(ctx, cfg, op) // scenarios/pgx.go
	}
	r := &Runner{cfg: cfg, op: op}
	switch cfg.Backend {
	case Postgres:
		if cfg.Connector == nil {
			pc, err := parseConnConfig(cfg, op)
			if err != nil {
				return nil, err
			}
			r.connCfg, r.hasWire = pc, true
			if cfg.Admin != nil {
				// The lock faults take their locks from a pool of their own
				// on the database under test, under another name.
				lc := pc.Copy()
				lc.RuntimeParams["application_name"] = "sessionsafe-lock-holder"
				r.lockDB = stdlib.OpenDB(*lc)
				r.server = faults.NewServer(cfg.Admin, faults.WithLockDB(r.lockDB))
			}
		} else {
			r.hasWire = cfg.Wire != nil
			if cfg.Admin != nil {
				r.server = faults.NewServer(cfg.Admin)
			}
		}
		r.unavailable = unavailableFaults(cfg, r.hasWire, r.server != nil, r.lockDB != nil)
	case Sqlmock:
		g, err := loadGolden(cfg.Golden, op.Name)
		if err != nil {
			return nil, fmt.Errorf("scenarios: new runner for %s: %w", op.Name, err)
		}
		r.expect = expectsOnly(g)
	}
	if err := r.record(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func checkConfig(cfg Config, op Operation) error {
	var probs []string
	if !nameRE.MatchString(op.Name) {
		probs = append(probs, fmt.Sprintf("operation name %q: want letters, digits, '-' or '_'", op.Name))
	}
	if cfg.Parallel < 0 {
		probs = append(probs, fmt.Sprintf("Parallel %d: want 0 or more", cfg.Parallel))
	}
	if op.Setup == nil || (op.Run == nil) == (op.RunPgx == nil) {
		probs = append(probs, "operation needs Setup and exactly one of Run and RunPgx")
	}
	if op.RunPgx != nil {
		probs = append(probs, checkPgxConfig(cfg)...)
	}
	switch cfg.Backend {
	case Postgres:
		if cfg.DSN == "" && cfg.Connector == nil {
			probs = append(probs, "postgres needs DSN or Connector")
		}
		if cfg.DB == nil {
			probs = append(probs, "postgres needs DB (the plain pool for fixtures and state)")
		}
		if cfg.Connector != nil && cfg.Parallel > 1 {
			probs = append(probs, fmt.Sprintf("Parallel %d needs DSN, not Connector (each pool of a case running beside others carries an application_name of its own, set on the DSN's config): give DSN, or Parallel 1", cfg.Parallel))
		}
		if (cfg.Admin == nil) != (cfg.AppName == "") {
			probs = append(probs, "Admin and AppName go together")
		}
	case Sqlmock:
		if cfg.Golden == nil {
			probs = append(probs, "sqlmock needs Golden (the file system holding "+op.Name+".trace: record it on PostgreSQL with RecordGolden or GoldenTests)")
		}
	default:
		probs = append(probs, fmt.Sprintf("backend %q: want %q or %q", cfg.Backend, Sqlmock, Postgres))
	}
	if len(probs) > 0 {
		return fmt.Errorf("scenarios: new runner for %s: %s: %w", op.Name, strings.Join(probs, "; "), ErrConfig)
	}
	return nil
}

// newPool (Postgres) opens a fresh injector and instrumented pool for l.
func (r *Runner) newPool(l *lane) {
	if l.pool != nil {
		_ = l.pool.Close()
	}
	var opts []faults.InjectorOption
	if l.wire != nil {
		opts = append(opts, faults.WithWire(l.wire))
	}
	if r.server != nil {
		opts = append(opts, faults.WithServer(r.server, l.app))
	}
	l.inj = faults.NewInjector(opts...)
	l.tracker = leakcheck.NewTracker()
	l.pool = sql.OpenDB(l.inj.WrapConnector(l.tracker.WrapConnector(noConnectGate{l.base, &l.noConnect})))
	l.pool.SetMaxIdleConns(1)
	l.dirty, l.stale = false, false
}

// plainDB is the pool Setup and State get: nil on sqlmock.
func (r *Runner) plainDB() *sql.DB {
	if r.cfg.Backend == Sqlmock {
		return nil
	}
	return r.cfg.DB
}

// record runs the operation twice with no fault: warm (the trace the cases
// target) and on an empty pool (the trace of the connect cases).
func (r *Runner) record(ctx context.Context) error {
	l := r.takeLane()
	defer r.putLane(l)
	for _, cold := range []bool{false, true} {
		if err := r.clearIfDirty(ctx, l); err != nil {
			return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
		}
		var fx Fixture
		err := r.bounded(ctx, r.prepTimeout(), "setup", func(ctx context.Context) error {
			var err error
			fx, err = r.op.Setup(ctx, r.plainDB())
			return err
		})
		if err != nil {
			return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
		}
		var before string
		if err := r.readState(ctx, fx, &before); err != nil {
			return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
		}
		env, err := r.env(ctx, l, cold, r.expect)
		if err != nil {
			return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
		}
		if !cold && r.cfg.Backend == Postgres && !r.cfg.NoSessionCheck {
			// what every connection the pool hands out carries before any
			// code ran on it
			if err := r.snapshotBaseline(ctx, env); err != nil {
				return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
			}
		}
		rctx, cancel := env.inj.Context(withTracker(ctx, env.tracker))
		err = r.op.Run(rctx, env.pool, fx)
		// The trace as Run left it: a step after the cancel (database/sql
		// closing rows the code left open, once their context ends) comes
		// sooner or later, and would make the cases differ from run to run.
		trace := env.inj.Trace()
		cancel()
		var mockErr error
		if env.mock != nil {
			mockErr = env.mock.mock.ExpectationsWereMet()
		}
		if r.cfg.Backend == Postgres && env.pool.Stats().InUse > 0 {
			// The run kept a connection (its cases report it): its session
			// may hold a lock the next Setup needs.
			l.dirty = true
		}
		env.close()
		if err != nil || mockErr != nil {
			// No matrix on code that fails with no fault: the clean case
			// alone runs, and reports what broke.
			r.broken = errors.Join(err, mockErr)
			r.clean, r.cold = trace, nil
			l.dirty = true
			return nil
		}
		if len(trace) == 0 {
			return fmt.Errorf("scenarios: %s: record: %w: the clean run recorded no step on the *sql.DB it was given: "+
				"Run must do its database work through that pool (one it opened itself is not instrumented, so nothing would be tested)", r.op.Name, ErrConfig)
		}
		if cold {
			r.cold = trace
			continue
		}
		r.clean, r.before = trace, before
		if r.op.State != nil && r.cfg.Backend == Postgres {
			if err := r.readState(ctx, fx, &r.after); err != nil {
				if errors.Is(err, errBound) {
					// The run left something the read waits for (a lock of
					// a session it kept): the clean case alone runs, and
					// reports it.
					r.broken, r.cold, l.dirty = err, nil, true
					return nil
				}
				return fmt.Errorf("scenarios: %s: record: %w", r.op.Name, err)
			}
			if r.after == r.before {
				return fmt.Errorf("scenarios: %s: %w: the state read back did not change (State must show what Run writes):\n%s",
					r.op.Name, ErrConfig, r.after)
			}
		}
	}
	return nil
}

// caseEnv is where one run happens: an injector and an instrumented pool,
// and on sqlmock the mock behind them.
type caseEnv struct {
	inj     *faults.Injector
	tracker *leakcheck.Tracker
	pool    *sql.DB
	mock    *mockDB
}

func (e caseEnv) close() {
	if e.mock != nil {
		_ = e.pool.Close()
		_ = e.mock.Close()
	}
}

// env prepares a run: on Postgres the shared pool (rebuilt if dirty), on
// sqlmock a fresh mock with exp as its expectations. The pool holds one idle
// connection (warm) or none (cold); the injector is reset after that, so the
// run's trace starts with the run.
func (r *Runner) env(ctx context.Context, l *lane, cold bool, exp []gstep) (caseEnv, error) {
	var e caseEnv
	if r.cfg.Backend == Sqlmock {
		m, err := newMockDB(r.op.Name)
		if err != nil {
			return e, err
		}
		e.mock = m
		e.inj = faults.NewInjector()
		e.tracker = leakcheck.NewTracker()
		e.pool = sql.OpenDB(e.inj.WrapConnector(e.tracker.WrapConnector(m.conn)))
		e.pool.SetMaxIdleConns(1)
		setExpectations(m.mock, exp)
	} else {
		if l.dirty {
			if err := r.clearServer(ctx, l); err != nil {
				return e, err
			}
		}
		if l.pool == nil || l.dirty || l.stale {
			r.newPool(l)
		}
		e.inj, e.pool, e.tracker = l.inj, l.pool, l.tracker
	}
	if cold {
		e.pool.SetMaxIdleConns(0)
		e.pool.SetMaxIdleConns(1)
	} else if st := e.pool.Stats(); st.Idle != 1 || st.InUse != 0 || r.cfg.Backend == Postgres {
		// Not exactly one idle connection (the last case's was discarded),
		// or on Postgres one a fault of the last case may have ended (an
		// injected error at a commit closes the conn; database/sql learns it
		// at its next use): ping, which discards a dead conn and opens
		// another, so that the run starts as the recording did.
		pctx, cancel := context.WithTimeout(ctx, r.prepTimeout())
		err := e.pool.PingContext(pctx)
		cancel()
		if err != nil {
			e.close()
			return e, fmt.Errorf("warm the pool (bounded by %s): %w", r.prepTimeout(), err)
		}
	}
	e.inj.Reset()
	e.tracker.Reset() // what an earlier run recorded is not this run's doing
	return e, nil
}

// clearServer ends every session of l's application name (what a broken
// case left open) — and, when the plain pool's sessions share that name,
// drops the plain pool's idle connections with them — waiting at most
// prepTimeout for the sessions to go.
func (r *Runner) clearServer(ctx context.Context, l *lane) error {
	if r.cfg.Admin == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.prepTimeout())
	defer cancel()
	_, err := faults.NewServer(r.cfg.Admin).TerminateBackends(ctx, l.app)
	if l.sharesAppName(r.cfg) {
		r.cfg.DB.SetMaxIdleConns(0)
		r.cfg.DB.SetMaxIdleConns(2)
	}
	if err != nil {
		return fmt.Errorf("clear the sessions the last case left: %w", err)
	}
	return nil
}

// clearIfDirty (Postgres), after a run on l that left something behind,
// ends the sessions of l's application name and opens a fresh pool.
func (r *Runner) clearIfDirty(ctx context.Context, l *lane) error {
	if r.cfg.Backend != Postgres || !l.dirty {
		return nil
	}
	if err := r.clearServer(ctx, l); err != nil {
		return err
	}
	if l.px != nil {
		l.dirty = false // a pgx case opens a fresh pool anyway
		return nil
	}
	r.newPool(l)
	return nil
}

// defaultTimeout is Config.Timeout when zero.
const defaultTimeout = 10 * time.Second

// prepTimeout bounds what the harness does around a run — Setup, warming
// the pool (connecting), ending the sessions a case left — : the case
// timeout, but never less than defaultTimeout. A short Config.Timeout is
// meant for the operation; on a loaded machine a connection alone can take
// longer, and a harness step cut short would be a false finding.
func (r *Runner) prepTimeout() time.Duration {
	return max(r.cfg.Timeout, defaultTimeout)
}

// errBound is wrapped by bounded's error for a call that outlived its bound.
var errBound = errors.New("scenarios: bound exceeded")

// bounded runs fn with a context that ends d from now, and waits for it at
// most 2s longer (fn may not honour its context). When d passes first, the
// error names what and, on Postgres, what the server's sessions were
// waiting for at that moment (read before the context ends, while they
// still wait), and wraps errBound.
//
// The 2s after d cannot change a verdict, however loaded the machine: once d
// has passed the call has outlived its bound and the error wraps errBound
// whether fn returns within the 2s or not; they only pick the wording, and
// bound how long a call that ignores its context delays the report.
func (r *Runner) bounded(ctx context.Context, d time.Duration, what string, fn func(ctx context.Context) error) error {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(bctx) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case <-t.C:
	}
	waits := r.lockWaits(ctx)
	cancel()
	grace := time.NewTimer(2 * time.Second)
	defer grace.Stop()
	select {
	case <-done:
		return fmt.Errorf("%s did not finish within %s%s: %w", what, d, waits, errBound)
	case <-grace.C:
		return fmt.Errorf("%s did not return within %s, nor within 2s after its context ended%s: %w", what, d, waits, errBound)
	}
}

// lockWaits describes, on Postgres with Admin, every session waiting for a
// lock and the sessions holding it ("" when none, or on error).
func (r *Runner) lockWaits(ctx context.Context) string {
	if r.cfg.Admin == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	rows, err := r.cfg.Admin.QueryContext(ctx, `SELECT a.pid, a.application_name, left(regexp_replace(a.query, '\s+', ' ', 'g'), 200),
	  coalesce((SELECT string_agg(format('backend %s (application_name %L, %s: %s)', b.pid, b.application_name, b.state,
	      left(regexp_replace(b.query, '\s+', ' ', 'g'), 200)), '; ')
	    FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))), '')
	FROM pg_stat_activity a WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid() ORDER BY a.pid`)
	if err != nil {
		return ""
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var pid int
		var app, query, blockers string
		if rows.Scan(&pid, &app, &query, &blockers) != nil {
			return ""
		}
		fmt.Fprintf(&b, "\n  backend %d (application_name %q) waits for a lock: %s\n    held by %s", pid, app, query, blockers)
	}
	if b.Len() == 0 {
		return ""
	}
	return ":" + b.String()
}

// unavailableFaults says which fault families a Postgres configuration
// cannot apply, and why.
func unavailableFaults(cfg Config, wire, server, lock bool) []string {
	var out []string
	if !wire {
		out = append(out, "wire faults (cut, cut-after, ambiguous) left out: Config.Connector without Config.Wire; "+
			"route the connector's network connections through a faults.Wire (Wire.Install on a pgx config, Wire.WrapConn in another driver's dialer) and set Config.Wire, or give Config.DSN")
	}
	if !server {
		out = append(out, "server faults (terminate, lock, stmt-timeout) left out: no Config.Admin and Config.AppName; "+
			"give an admin pool and the application_name the operation's connections carry")
	} else if !lock {
		out = append(out, "lock, stmt-timeout and cancel-blocked faults left out: they take their locks on a pool of their own opened from Config.DSN; give Config.DSN")
	}
	return out
}

// Unavailable returns the fault families the runner leaves out on this
// configuration, one line each with the reason and the fix; empty when
// every family applies (always on sqlmock, which has no network or server).
func (r *Runner) Unavailable() []string { return r.unavailable }

// Trace returns the warm clean run's trace, readable (one step a line).
func (r *Runner) Trace() string { return r.clean.String() }

// Broken returns why the clean recording failed (the operation failed with
// no fault armed, or on sqlmock its golden trace did not fit), or nil. A
// broken runner's Cases is the clean case alone, whose findings say what
// broke.
func (r *Runner) Broken() error { return r.broken }

// Cases returns every case of the matrix: the clean case (step 0), then one
// per step of the clean trace × per fault applicable there, then the connect
// faults on an empty pool (named step-1-connect), filtered by Config.Only.
func (r *Runner) Cases() []Case {
	var cs []Case
	add := func(c Case) {
		c.Backend, c.Operation = r.cfg.Backend, r.op.Name
		if r.cfg.Only == nil || r.cfg.Only(c) {
			cs = append(cs, c)
		}
	}
	add(Case{Step: 0, StepKind: StepClean})
	if r.broken != nil {
		return cs
	}
	for i, s := range r.clean {
		for _, f := range r.faultsAt(s.Kind, r.clean[:i], s.SQL, placeOf(r.clean, s.Index)) {
			add(Case{Step: s.Index, StepKind: s.Kind, SQL: s.SQL, Fault: f})
		}
	}
	if len(r.cold) > 0 && r.cold[0].Kind == faults.StepConnect {
		for _, f := range r.faultsAt(faults.StepConnect, nil, "", place{}) {
			add(Case{Step: 1, StepKind: faults.StepConnect, Fault: f})
		}
	}
	return cs
}

// faultsAt returns the faults tried at a step of kind k with SQL sql at
// place p, after the steps earlier.
func (r *Runner) faultsAt(k faults.StepKind, earlier faults.Trace, sql string, p place) []faults.Fault {
	if r.pxBase != nil {
		return r.pgxFaultsAt(k, p)
	}
	if r.cfg.Disconnect {
		return []faults.Fault{{Kind: faults.KindCancel}}
	}
	if r.cfg.Faults != nil {
		return r.cfg.Faults(k)
	}
	var out []faults.Fault
	candidates := faults.Applicable(k, r.cfg.Backend)
	if !r.cfg.NoCancelBlocked && r.cfg.Backend == Postgres && (k == faults.StepExec || k == faults.StepQuery) && tableRE.MatchString(sql) {
		candidates = append(candidates, faults.Fault{Kind: faults.KindCancelBlocked})
	}
	for _, f := range candidates {
		locks := f.Kind == faults.KindLock || f.Kind == faults.KindStmtTimeout || f.Kind == faults.KindCancelBlocked
		switch {
		case f.Kind.NeedsWire() && !r.hasWire, f.Kind.NeedsServer() && r.server == nil,
			locks && r.lockDB == nil:
			continue // no mechanism: see Unavailable
		case !faultPossible(f, k, p):
			continue
		case f.Kind == faults.KindCancelBlocked && p.inTx && touchedInTx(earlier, sql),
			f.Kind != faults.KindCancelBlocked && locks && touchedInTx(earlier, sql):
			// The other session cannot take its lock on a table the
			// transaction under test holds a lock on already.
			continue
		case f.Kind == faults.KindPanic && k != faults.StepNext:
			// A driver call that panics elsewhere breaks database/sql itself,
			// whatever the caller does: a panicking connect, begin or commit
			// never gives its connection back, and a panicking query or exec
			// inside a transaction keeps the Tx's lock, so the caller's
			// Rollback deadlocks. Rows.Next survives it, and the panic then
			// reaches the caller's unit of work as a panic in its own code.
			continue
		}
		out = append(out, f)
	}
	return out
}

var tableRE = regexp.MustCompile(`(?i)\b(?:from|join|update|into)\s+((?:"[^"]+"|[a-z_][a-z0-9_$]*)(?:\.(?:"[^"]+"|[a-z_][a-z0-9_$]*))?)`)

// touchedInTx reports whether the first table sql names (the one a lock
// fault locks) was named by a step of the transaction open at the end of
// earlier.
func touchedInTx(earlier faults.Trace, sql string) bool {
	m := tableRE.FindStringSubmatch(sql)
	if m == nil {
		return false
	}
	target := strings.ToLower(m[1])
	for i := len(earlier) - 1; i >= 0; i-- {
		switch earlier[i].Kind {
		case faults.StepBegin:
			return false
		case faults.StepCommit, faults.StepRollback:
			return false
		}
		for _, t := range tableRE.FindAllStringSubmatch(earlier[i].SQL, -1) {
			if strings.ToLower(t[1]) == target {
				return true
			}
		}
	}
	return false
}

// Close releases what the runner holds; after a case that left something
// behind, it ends the sessions of the application name (bounded by the
// case timeout), so that nothing stays on the server.
func (r *Runner) Close() error {
	r.lanesMu.Lock()
	lanes := r.lanes
	r.lanes, r.free = nil, nil
	r.lanesMu.Unlock()
	var errs []error
	for _, l := range lanes {
		if l.px != nil {
			l.closePgxPool()
		}
		if r.cfg.Backend == Postgres && l.dirty {
			errs = append(errs, r.clearServer(context.Background(), l))
		}
		if l.pool != nil {
			errs = append(errs, l.pool.Close())
		}
	}
	if r.lockDB != nil {
		errs = append(errs, r.lockDB.Close())
	}
	return errors.Join(errs...)
}

// runOutcome is what one run of the operation did.
type runOutcome struct {
	err      error
	panicked any
	hung     bool
	dump     string
	runTime  time.Duration
	scope    *leakcheck.Scope // marks the goroutines the run started
}

// RunCase reruns the operation on fresh state with the case's fault armed and
// checks every invariant. It is safe to call from several goroutines at
// once (see RunCases).
func (r *Runner) RunCase(ctx context.Context, c Case) Result {
	if lockingFault(c.Fault) {
		r.gate.Lock()
		defer r.gate.Unlock()
	} else {
		r.gate.RLock()
		defer r.gate.RUnlock()
	}
	l := r.takeLane()
	defer r.putLane(l)
	var res Result
	if r.pxBase != nil {
		res = r.runPgxCase(ctx, l, c) // scenarios/pgx.go
	} else {
		res = r.runCase(ctx, l, c)
	}
	// What the case left on the server goes now, not before the lane's
	// next case: a session it leaked may hold a lock a case on another
	// lane needs. (Failing that, the lane's next case tries again.)
	_ = r.clearIfDirty(context.WithoutCancel(ctx), l)
	return res
}

// runCase is RunCase on lane l for an operation with Run.
func (r *Runner) runCase(ctx context.Context, l *lane, c Case) (res Result) {
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
	cold := c.StepKind == faults.StepConnect

	// What the last case left on the server goes first: a session it
	// leaked may hold a lock this case's Setup needs.
	if err := r.clearIfDirty(ctx, l); err != nil {
		find(InvSetup, nil, "%v", err)
		return res
	}

	var fx Fixture
	err := r.bounded(ctx, r.prepTimeout(), "setup", func(ctx context.Context) error {
		var err error
		fx, err = r.op.Setup(ctx, r.plainDB())
		return err
	})
	if err != nil {
		inv := InvSetup
		if errors.Is(err, errBound) {
			inv = InvDeadline
		}
		find(inv, nil, "setup: %v", err)
		return res
	}
	release, err := r.claimFixture(l, fx)
	if err != nil {
		find(InvSetup, nil, "%v", err)
		return res
	}
	defer release()
	// On sqlmock the expectations are set before the run: the model of a
	// correct unit of work, from the golden trace.
	var exp []gstep
	var at place
	if !c.Clean() && !cold {
		at = placeOf(r.clean, c.Step)
	}
	out := outcomeOf(c, fault, at, r.op.Retries, r.cfg.Disconnect)
	if r.cfg.Backend == Sqlmock {
		exp = r.expectations(c, fault, out)
	}
	res.Phases.Setup = mark()
	env, err := r.env(ctx, l, cold, exp)
	res.Phases.Connect = mark()
	if err != nil {
		find(InvSetup, nil, "%v", err)
		return res
	}
	defer env.close()

	env.inj.Arm(plan)
	o, cancel := r.run(ctx, env, fx)
	defer cancel()
	mark()
	if fault.Kind == faults.KindTerminate && l.sharesAppName(r.cfg) {
		// the plain pool's sessions share the application name: they were
		// terminated too
		r.cfg.DB.SetMaxIdleConns(0)
		r.cfg.DB.SetMaxIdleConns(2)
	}
	res.RunTime = o.runTime
	trace := env.inj.Trace()
	fired := env.inj.Fired()
	res.Fired = len(fired) > 0
	if res.Fired && !keepsConnHealthy(fault, c.StepKind) {
		// the next case starts on a fresh pool, as its replay would
		l.stale = true
	}
	if o.panicked != nil {
		res.Err = fmt.Errorf("panic: %v", o.panicked)
	} else {
		res.Err = o.err
	}
	if o.hung {
		find(InvDeadline, trace, "the operation did not return within %s (+%s grace); goroutines:\n%s", r.cfg.Timeout, r.hangGrace(), o.dump)
		l.dirty = true
		return res
	}

	// The fault fired where it was aimed.
	checkFired(find, c, trace, fired)

	// The call ran on the caller's context.
	if len(fired) > 0 && errors.Is(fired[0].Err, faults.ErrForeignContext) && carriesCallerContext(fired[0].Step.Kind) {
		find(InvContext, trace, "the call at step %d (%s%s) did not run on the caller's context: the cancel fault found a context that "+
			"does not come from the caller (context.Background(), or one the code made itself), so the caller's cancellation and deadline never reach it; pass the caller's ctx down",
			fired[0].Step.Index, fired[0].Step.Kind, sqlSuffix(fired[0].Step.SQL))
	}

	if len(fired) > 0 && fired[0].Unheeded != nil {
		find(InvContext, trace, "%v", fired[0].Unheeded)
	}

	// The error surfaced, or the retry succeeded.
	switch {
	case r.cfg.Disconnect:
	case c.Clean() && res.Err != nil:
		find(InvErrorSurfaced, trace, "got error %v with no fault armed; want success", res.Err)
	case out == outSurfaces && res.Fired && res.Err == nil:
		find(InvErrorSurfaced, trace, "got success (nil error); want the injected failure to reach the caller: %s", firedLine(fired))
	case out == outSurfaces && fault.Kind != faults.KindPanic && o.panicked != nil:
		find(InvErrorSurfaced, trace, "the operation panicked (%v) for a fault that is an error", o.panicked)
	case out == outSurfaces && res.Fired && errors.Is(res.Err, pgx.ErrTxCommitRollback):
		// The injected error aborted the transaction (as any error does on
		// Postgres) and the code went on to commit it: the caller learns
		// only that the commit rolled back, not what failed.
		find(InvErrorSurfaced, trace, "got %q; want the injected failure (%s): the code went on after an error in its transaction and committed it",
			res.Err, firedLine(fired))
	case out == outEither && res.Fired && res.Err == nil && retriedByDatabaseSQL(fault, c.StepKind, at) && !retriedAfter(trace, fired[0].Step):
		find(InvErrorSurfaced, trace, "got success (nil error); want the injected failure to reach the caller, or the statement run again on another connection as database/sql does through *sql.DB — the trace shows no retry after %s",
			firedLine(fired))
	case (out == outRetried || out == outAbsorbed) && res.Fired && res.Err != nil:
		find(InvRetried, trace, "got error %v; want success: the fault (%s) is %s", res.Err, firedLine(fired), out)
	}

	// All or nothing (the state read back), and the pool and server checks,
	// side by side: they wait on different pools. The goroutine check comes
	// after both, against the goroutines that existed before the run.
	type stateRead struct {
		got string
		err error
	}
	stateCh := make(chan stateRead, 1)
	if r.op.State != nil && r.cfg.Backend == Postgres {
		go func() {
			var got string
			err := r.readState(ctx, fx, &got)
			stateCh <- stateRead{got, err}
		}()
	} else {
		close(stateCh)
	}
	opts := []leakcheck.Option{leakcheck.WithDB(env.pool), leakcheck.WithTracker(env.tracker), leakcheck.WithTimeout(r.cfg.CheckTimeout)}
	if r.cfg.Backend == Postgres && r.cfg.Admin != nil {
		opts = append(opts, leakcheck.WithServer(r.cfg.Admin, l.app))
	}
	// The goroutines this case's run started, and no other's, are checked
	// beside the pool and the server: every check polls to its own bound, so
	// a case that leaks waits out one bound, not one after the other.
	goroutineErr := make(chan error, 1)
	if r.cfg.NoGoroutineCheck {
		goroutineErr <- nil
	} else {
		go func() {
			gctx, gcancel := context.WithTimeout(ctx, 2*r.cfg.CheckTimeout)
			defer gcancel()
			goroutineErr <- leakcheck.Find(gctx, leakcheck.WithScope(o.scope), leakcheck.WithTimeout(r.cfg.CheckTimeout))
		}()
	}
	// The server's answers are bounded here too.
	lctx, lcancel := context.WithTimeout(ctx, 3*r.cfg.CheckTimeout)
	defer lcancel()
	leakErr := leakcheck.Find(lctx, opts...)
	if st, ok := <-stateCh; ok {
		r.checkState(find, trace, fault, at, res.Err, st.got, st.err)
	}
	reportLeaks(find, trace, errors.Join(leakErr, <-goroutineErr))
	res.Phases.Checks = mark()

	// The connections going back to the pool carry no session state.
	if r.session != nil {
		leaks, errs := r.checkSessions(ctx, l, env)
		for _, m := range leaks {
			find(InvSession, trace, "%s", m)
		}
		for _, err := range errs {
			find(InvSetup, trace, "session check: %v", err)
		}
		res.Phases.Session = mark()
	}

	// sqlmock: the generated expectations were met (those of a retry by
	// database/sql, which a *sql.Conn does not make: then only up to the
	// fault).
	if env.mock != nil && !(out == outEither && res.Err != nil) {
		if err := env.mock.mock.ExpectationsWereMet(); err != nil {
			find(InvExpectations, trace, "%v\nthe expectations generated from the golden trace (%s):\n%s", err, out, describeExpectations(exp))
		}
	}
	if len(res.Findings) > 0 {
		l.dirty = true
	}
	return res
}

// readState (Postgres, with State) reads the state back into *dst,
// bounded by the case timeout.
func (r *Runner) readState(ctx context.Context, fx Fixture, dst *string) error {
	if r.op.State == nil || r.cfg.Backend != Postgres {
		return nil
	}
	var got string
	err := r.bounded(ctx, r.cfg.Timeout, "read the state back", func(ctx context.Context) error {
		var err error
		got, err = r.op.State(ctx, r.cfg.DB, fx)
		return err
	})
	if err != nil {
		return err // got may still be written by a State that outlived its bound
	}
	*dst = got
	return nil
}

// snapshotBaseline reads the session state of the warm connection of env's
// pool, before any code ran on it, as the baseline of the session check.
func (r *Runner) snapshotBaseline(ctx context.Context, env caseEnv) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	conn, err := env.pool.Conn(ctx)
	if err != nil {
		return fmt.Errorf("session baseline: %w", err)
	}
	s, err := leakcheck.SnapshotSession(ctx, conn)
	if cerr := conn.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("session baseline: %w", err)
	}
	r.session = &s
	env.inj.Reset()
	env.tracker.Reset()
	return nil
}

// checkSessions compares every idle connection of env's pool with the
// baseline session state and returns one message per connection that
// carries more, and what kept it from reading one. It disarms the injector first (the check's own steps must
// not meet the case's fault). A connection the check cannot read is
// reported only when the case's fault leaves connections healthy (rule 5);
// otherwise the fault may have ended it, and it is skipped.
func (r *Runner) checkSessions(ctx context.Context, l *lane, env caseEnv) (leaks []string, errs []error) {
	env.inj.Reset()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	// Only the connections the case gave back are checked: one database/sql
	// would open in place of a dead one is a fresh session, with nothing to
	// find and a backend start to pay.
	l.noConnect.Store(true)
	defer l.noConnect.Store(false)
	for range env.pool.Stats().Idle {
		conn, err := env.pool.Conn(ctx)
		if errors.Is(err, errNoConnect) {
			break
		}
		if err != nil {
			if !l.stale {
				errs = append(errs, fmt.Errorf("take an idle connection of the pool: %w", err))
			}
			break
		}
		held = append(held, conn) // held until the end: the next Conn takes another one
		after, err := leakcheck.SnapshotSession(ctx, conn)
		if err != nil {
			if !l.stale {
				errs = append(errs, err)
			}
			continue
		}
		base := *r.session
		base.PID, base.BackendStart = after.PID, after.BackendStart // the baseline is any fresh session's
		if diff := base.Diff(after); len(diff) > 0 {
			leaks = append(leaks, fmt.Sprintf("a connection went back to the pool carrying session state the next user of backend %d inherits:\n  %s",
				after.PID, strings.Join(diff, "\n  ")))
		}
	}
	return leaks, errs
}

// run runs the operation once under the case's deadline (see runScoped).
//
// The run's context stays live until the caller calls the returned cancel,
// after the checks: database/sql rolls back a transaction and closes rows
// when their context ends, which would hide a transaction the code never
// ended behind the end of the request.
func (r *Runner) run(ctx context.Context, env caseEnv, fx Fixture) (runOutcome, context.CancelFunc) {
	ctx, cancelT := context.WithTimeout(ctx, r.cfg.Timeout)
	rctx, cancelR := env.inj.Context(withTracker(ctx, env.tracker))
	cancel := func() { cancelR(); cancelT() }
	return r.runScoped(ctx, func() error { return r.op.Run(rctx, env.pool, fx) }), cancel
}

// hangGrace is how long a run may go on past its case's deadline before it
// is reported hung: the case's Timeout once more, and at least 2s. A call
// that honours its context returns soon after the deadline, but on a loaded
// machine that unwinding waits for a CPU as the call's own work did, so a
// fixed window is one a correct call could outlast and be reported hung; the
// Timeout is what a run sizes to its load, and a call that has not returned
// after twice it ignores its context, not the load.
func (r *Runner) hangGrace() time.Duration {
	return max(r.cfg.Timeout, 2*time.Second)
}

// runScoped calls call on a goroutine of its own, marked with a new
// leakcheck.Scope (every goroutine it starts carries the mark, so that the
// goroutine check counts this run's goroutines and no other case's),
// recovering a panic; a call that outlives the case's deadline by hangGrace
// is reported as hung with the goroutine dump (and left running). ctx carries
// the caller's pprof labels, if any.
func (r *Runner) runScoped(ctx context.Context, call func() error) runOutcome {
	done := make(chan runOutcome, 1)
	start := time.Now()
	scope := leakcheck.EnterScope(ctx)
	go func() {
		var o runOutcome
		defer func() {
			o.panicked = recover()
			o.runTime = time.Since(start)
			done <- o
		}()
		o.err = call()
	}()
	scope.Exit()
	grace := time.NewTimer(r.cfg.Timeout + r.hangGrace())
	defer grace.Stop()
	var o runOutcome
	select {
	case o = <-done:
	case <-grace.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		o = runOutcome{hung: true, dump: string(buf), runTime: time.Since(start)}
	}
	o.scope = scope
	return o
}

// outcomeOf says what a correct operation does with the case's fault.
func outcomeOf(c Case, f faults.Fault, at place, retries func(error) bool, disconnect bool) outcome {
	switch {
	case c.Clean(), f.Kind == faults.KindLatency:
		return outAbsorbed
	case disconnect:
		return outSurfaces
	case f.Kind == faults.KindBadConn && (c.StepKind == faults.StepConnect || c.StepKind == faults.StepReset ||
		c.StepKind == faults.StepBegin || c.StepKind == faults.StepPing):
		return outAbsorbed // database/sql retries on a fresh connection
	case c.StepKind == faults.StepReset:
		return outAbsorbed
	case rollbackMayBeSilent(c.StepKind):
		return outEither // the caller hears of the unit's own failure, not necessarily of the rollback's
	case stmtCloseMayBeSilent(c.StepKind):
		return outEither // database/sql drops a failed statement close
	case retriedByDatabaseSQL(f, c.StepKind, at):
		return outEither // through *sql.DB: retried on another connection; through a *sql.Conn: surfaces
	case (f.Kind.NeedsWire() || f.Kind.NeedsServer()) && (c.StepKind == faults.StepConnect || c.StepKind == faults.StepBegin):
		return outEither // pgx may report a dead connection as safe to retry
	case retries != nil && retries(faultError(f)):
		return outRetried
	}
	return outSurfaces
}

// faultError is the error a fault injects, for Operation.Retries.
func faultError(f faults.Fault) error {
	switch f.Kind {
	case faults.KindPgErr:
		return faults.PgError(f.Code)
	case faults.KindBadConn:
		return driver.ErrBadConn
	case faults.KindCancel, faults.KindCancelBlocked:
		return context.Canceled
	}
	return faults.ErrInjected
}

// connBreaks reports whether the fault leaves the connection dead, so that
// nothing more (not even the rollback) reaches the driver on it.
func connBreaks(f faults.Fault) bool {
	if f.Kind == faults.KindBadConn {
		return true
	}
	return f.Kind == faults.KindPgErr && (f.Code == "57P01" || f.Code == "53300" || strings.HasPrefix(f.Code, "08"))
}

// expectations returns a sqlmock case's expectations.
func (r *Runner) expectations(c Case, f faults.Fault, out outcome) []gstep {
	if c.Clean() || (out == outEither && (f.Kind == faults.KindBadConn || stmtCloseMayBeSilent(c.StepKind))) {
		return r.expect // as clean: retried, or the failed close dropped
	}
	k := 0
	if c.StepKind != faults.StepConnect {
		for _, s := range r.clean[:min(c.Step-1, len(r.clean))] {
			if (gstep{Kind: s.Kind.String()}).expects() {
				k++
			}
		}
	}
	// a dead connection gets no rollback: database/sql discards it (the
	// server ends the transaction with the session)
	exp := expectFor(r.expect, k, c.StepKind.String(), false, out, !connBreaks(f))
	return exp
}

// finder records a finding of the case being run.
type finder func(inv Invariant, trace faults.Trace, format string, args ...any)

// checkFired: the case's fault fired at the step it was aimed at.
func checkFired(find finder, c Case, trace faults.Trace, fired []faults.Firing) {
	if c.Clean() {
		return
	}
	switch {
	case len(fired) == 0:
		find(InvFired, trace, "the fault never fired: the run had %d steps, step %d was not reached as %s (the trace changed; see the trace below)",
			len(trace), c.Step, c.StepKind)
	case fired[0].Step.Kind != c.StepKind:
		find(InvFired, trace, "the fault fired at step %d (%s), not at a %s step: the trace changed", fired[0].Step.Index, fired[0].Step.Kind, c.StepKind)
	}
}

// checkState: the state read back (got, or the error reading it) is all or
// nothing, and agrees with what the caller was told (callerErr) for fault f
// at place at.
func (r *Runner) checkState(find finder, trace faults.Trace, f faults.Fault, at place, callerErr error, got string, err error) {
	switch {
	case errors.Is(err, errBound):
		find(InvDeadline, trace, "%v", err)
	case err != nil:
		find(InvSetup, trace, "read state back: %v", err)
	case got != r.before && got != r.after:
		find(InvAllOrNothing, trace, "the state read back is neither the before-state nor the after-state (-before +got):\n%s\n(-after +got):\n%s",
			diffLines(r.before, got), diffLines(r.after, got))
	case r.cfg.Disconnect || f.Kind == faults.KindAmbiguous:
	case got == r.after && afterStateMayFail(f, at):
		// an autocommit write reached the server before the fault: it
		// is committed, whatever the caller was told
	case got == r.after && r.before != r.after && callerErr != nil:
		find(InvAllOrNothing, trace, "the write is in the database (after-state) but the caller was told it failed: %v", callerErr)
	case got == r.before && r.before != r.after && callerErr == nil:
		find(InvAllOrNothing, trace, "the caller was told of success but the database holds the before-state (the write was lost)")
	}
}

// reportLeaks turns leakcheck's findings into the case's findings.
func reportLeaks(find finder, trace faults.Trace, leakErr error) {
	if leakErr == nil {
		return
	}
	var le *leakcheck.Error
	reported := false
	for _, e := range flatten(leakErr) {
		if errors.As(e, &le) {
			for _, f := range le.Findings {
				find(invariantOf(f.Check), trace, "%s", f.String())
				reported = true
			}
		}
	}
	if !reported {
		find(InvSetup, trace, "leak check: %v", leakErr)
	}
}

// flatten returns the errors joined in err (errors.Join), or err alone.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func invariantOf(c leakcheck.Check) Invariant {
	switch c {
	case leakcheck.CheckPool:
		return InvPool
	case leakcheck.CheckGoroutines:
		return InvGoroutines
	case leakcheck.CheckLongTx:
		return InvLongTx
	default:
		return InvServer
	}
}

// sqlSuffix returns ": <sql>" on one line, or "" for a step without SQL.
func sqlSuffix(sql string) string {
	if sql == "" {
		return ""
	}
	return ": " + oneLine(sql, 200)
}

func firedLine(fired []faults.Firing) string {
	if len(fired) == 0 {
		return "nothing fired"
	}
	return fired[0].String()
}

// diffLines returns a line diff of want and got: "-" lines only in want, "+"
// lines only in got.
func diffLines(want, got string) string {
	w := strings.Split(strings.TrimRight(want, "\n"), "\n")
	g := strings.Split(strings.TrimRight(got, "\n"), "\n")
	inG := map[string]int{}
	for _, l := range g {
		inG[l]++
	}
	inW := map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	var b strings.Builder
	for _, l := range w {
		if inG[l] > 0 {
			inG[l]--
			continue
		}
		fmt.Fprintf(&b, "-%s\n", l)
	}
	for _, l := range g {
		if inW[l] > 0 {
			inW[l]--
			continue
		}
		fmt.Fprintf(&b, "+%s\n", l)
	}
	if b.Len() == 0 {
		return " (same lines, different order)\n"
	}
	return b.String()
}

// Run runs the whole matrix of each operation on cfg.Backend and reports every
// case. The error is for a matrix that could not run (configuration, a clean
// run that fails); broken invariants are in the Report.
func Run(ctx context.Context, cfg Config, ops ...Operation) (Report, error) {
	start := time.Now()
	rep := Report{Backend: cfg.Backend}
	defer func() { rep.Duration = time.Since(start) }()
	for _, op := range ops {
		r, err := NewRunner(ctx, cfg, op)
		if err != nil {
			return rep, err
		}
		for _, u := range r.Unavailable() {
			if !slices.Contains(rep.Unavailable, u) {
				rep.Unavailable = append(rep.Unavailable, u)
			}
		}
		rep.Results = append(rep.Results, r.RunCases(ctx, r.Cases(), cfg.Parallel, nil)...)
		if err := r.Close(); err != nil {
			return rep, fmt.Errorf("scenarios: %s: close: %w", op.Name, err)
		}
	}
	rep.Duration = time.Since(start)
	return rep, ctx.Err()
}

// RunTests runs the matrix of each operation as subtests of t named
// "operation/step-N-kind/fault"; a broken invariant fails the subtest with the
// finding's message, which ends with the go test command that replays it.
// With Config.Parallel above 1 the case subtests are parallel (t.Parallel),
// at most Config.Parallel of them (and go test's -parallel) at once.
func RunTests(t *testing.T, cfg Config, ops ...Operation) {
	t.Helper()
	var slots chan struct{}
	if cfg.Parallel > 1 {
		slots = make(chan struct{}, cfg.Parallel)
	}
	for _, op := range ops {
		t.Run(op.Name, func(t *testing.T) {
			r, err := NewRunner(t.Context(), cfg, op)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			for _, u := range r.Unavailable() {
				t.Log(u)
			}
			if cfg.Replay == nil {
				r.cfg.Replay = func(c Case) string { return goTestCommand(t.Name() + "/" + strings.TrimPrefix(c.Name(), op.Name+"/")) }
			}
			for _, c := range r.Cases() {
				t.Run(strings.TrimPrefix(c.Name(), op.Name+"/"), func(t *testing.T) {
					if slots != nil {
						t.Parallel()
						slots <- struct{}{}
						defer func() { <-slots }()
					}
					res := r.RunCase(t.Context(), c)
					for _, f := range res.Findings {
						t.Error(f.Error())
					}
				})
			}
		})
	}
}

// goTestCommand returns the go test command that runs exactly the test named
// name, from the module root.
func goTestCommand(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	parts[0] = "^" + parts[0] + "$"
	if len(parts) > 1 {
		parts[len(parts)-1] = "^" + parts[len(parts)-1] + "$"
	}
	return fmt.Sprintf("go test %s -run '%s'", packageDir(), strings.Join(parts, "/"))
}

var pkgDir = sync.OnceValue(func() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return packageDirOf(wd)
})

// packageDirOf returns dir relative to the root of the module holding it
// (the nearest directory above with a go.mod), as go test names a package
// directory: "./internal/store", or "." for the root itself or outside any
// module.
func packageDirOf(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			rel, err := filepath.Rel(d, dir)
			if err != nil || rel == "." {
				return "."
			}
			return "./" + filepath.ToSlash(rel)
		}
		if filepath.Dir(d) == d {
			return "."
		}
	}
}

// packageDir returns the directory of the package under test (the working
// directory of a test binary), relative to its module's root.
func packageDir() string { return pkgDir() }
