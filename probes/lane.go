package probes

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/leakcheck"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// lane is one goroutine's pool: an injector counting that goroutine's steps
// alone, a tracker naming where its connections were taken, and an
// application_name of its own on the server. Exactly one of the database/sql
// and pgx halves is set, after the operation's form.
type lane struct {
	g    int
	app  string
	size int

	// database/sql (Operation.Run)
	inj     *faults.Injector
	tracker *leakcheck.Tracker
	db      *sql.DB
	// sqlmock: whether its expectations were met, and its release
	met       func() error
	closeMock func() error

	// pgx (Operation.RunPgx)
	pinj     *faults.PgxInjector
	ptracker *leakcheck.PgxTracker
	pool     *pgxpool.Pool

	// waits counts acquisitions that began with every connection of the
	// pool taken (pgx; database/sql counts them in DBStats.WaitCount).
	waits atomic.Int64
	// kept names the first run of the round that returned with a
	// connection of the pool still taken ("run 0 of round 3 returned with 1
	// connection still taken"); nil when none did.
	kept atomic.Pointer[string]
}

// noteKept records, after run k of round r returned, that it left
// connections taken, unless an earlier run of the round did.
func (l *lane) noteKept(r, k int) {
	if n := l.inUse(); n > 0 {
		s := fmt.Sprintf("its run %d of round %d returned with %d connection(s) still taken", k, r, n)
		l.kept.CompareAndSwap(nil, &s)
	}
}

// maxAppName is the longest application_name PostgreSQL keeps (NAMEDATALEN
// - 1); a longer one is cut, and then matches no check.
const maxAppName = 63

// appName returns the application_name of goroutine g's pool: prefix +
// "-g<g>", the prefix's middle cut when the whole would be too long (its
// last 10 bytes, where generated names keep what makes them unique, stay).
func appName(prefix string, g int) string {
	suffix := fmt.Sprintf("-g%d", g)
	if over := len(prefix) + len(suffix) - maxAppName; over > 0 && len(prefix) > over+11 {
		keep := len(prefix) - over - 11
		prefix = prefix[:keep] + "~" + prefix[len(prefix)-10:]
	}
	return prefix + suffix
}

// openLane opens goroutine g's pool of size connections for op.
func openLane(ctx context.Context, cfg Config, op scenarios.Operation, g, size int) (*lane, error) {
	l := &lane{g: g, app: appName(cfg.AppName, g), size: size}
	if op.RunPgx != nil {
		pc, err := pgxpool.ParseConfig(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("probes: parse DSN: %w", err)
		}
		pc.ConnConfig.RuntimeParams["application_name"] = l.app
		pc.MaxConns, pc.MinConns, pc.MinIdleConns = int32(size), 0, 0
		// A ping of a connection idle for a second would be a step some
		// runs have and others not.
		pc.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
		l.pinj = faults.NewPgxInjector()
		l.pinj.Install(&pc.ConnConfig.Config)
		l.ptracker = leakcheck.NewPgxTracker()
		l.ptracker.Install(pc)
		pc.ConnConfig.Tracer = &acquireWatch{PgxTracker: l.ptracker, lane: l}
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("probes: open pgx pool: %w", err)
		}
		l.pool = pool
		return l, nil
	}
	var base driver.Connector
	if cfg.Backend == faults.Mock {
		c, met, closeMock, err := scenarios.MockConnector(cfg.Golden, op.Name)
		if err != nil {
			return nil, fmt.Errorf("probes: %w", err)
		}
		base, l.met, l.closeMock = c, met, closeMock
	} else {
		cc, err := pgx.ParseConfig(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("probes: parse DSN: %w", err)
		}
		cc.RuntimeParams["application_name"] = l.app
		base = stdlib.GetConnector(*cc)
	}
	l.inj = faults.NewInjector(faults.WithMaxRows(16))
	l.tracker = leakcheck.NewTracker()
	l.db = sql.OpenDB(l.inj.WrapConnector(l.tracker.WrapConnector(base)))
	l.db.SetMaxOpenConns(size)
	l.db.SetMaxIdleConns(size)
	return l, nil
}

// acquireWatch is the pgx tracer of a lane: its PgxTracker, and a count of
// the acquisitions that begin with every connection of the pool taken (they
// wait for one to come back).
type acquireWatch struct {
	*leakcheck.PgxTracker
	lane *lane
}

// TraceAcquireStart counts an acquisition that must wait, then goes on as
// the PgxTracker does.
func (w *acquireWatch) TraceAcquireStart(ctx context.Context, p *pgxpool.Pool, d pgxpool.TraceAcquireStartData) context.Context {
	if p.Stat().AcquiredConns() >= int32(w.lane.size) {
		w.lane.waits.Add(1)
	}
	return w.PgxTracker.TraceAcquireStart(ctx, p, d)
}

// waited returns how many acquisitions have waited for a connection so far.
func (l *lane) waited() int64 {
	if l.db != nil {
		return l.db.Stats().WaitCount
	}
	return l.waits.Load()
}

// arm arms p for the lane's next run and forgets what the last run fired.
func (l *lane) arm(p faults.Plan) error {
	if l.inj != nil {
		l.inj.Arm(p)
		l.tracker.Reset()
		return nil
	}
	l.ptracker.Reset()
	if err := l.pinj.Arm(p); err != nil {
		return fmt.Errorf("probes: arm %s: %w", p, err)
	}
	return nil
}

// context returns the run's context: cancelled by a cancel fault of this
// lane's injector alone, carrying the goroutine number and the tracker that
// scenarios.External reports through.
func (l *lane) context(parent context.Context) (context.Context, context.CancelFunc) {
	parent = context.WithValue(parent, goroutineKey{}, l.g)
	if l.inj != nil {
		return l.inj.Context(scenarios.WithTracker(parent, l.tracker))
	}
	return l.pinj.Context(scenarios.WithPgxTracker(parent, l.ptracker))
}

// run runs op once on the lane's pool.
func (l *lane) run(ctx context.Context, op scenarios.Operation, fx scenarios.Fixture) error {
	if l.db != nil {
		return op.Run(ctx, l.db, fx)
	}
	return op.RunPgx(ctx, l.pool, fx)
}

func (l *lane) fired() []faults.Firing {
	if l.inj != nil {
		return l.inj.Fired()
	}
	return l.pinj.Fired()
}

func (l *lane) trace() faults.Trace {
	if l.inj != nil {
		return l.inj.Trace()
	}
	return l.pinj.Trace()
}

// held describes what the lane's pool holds now: each connection in use,
// where it was acquired, the transaction and rows it holds ("" when nothing).
func (l *lane) held(ctx context.Context) string {
	if l.tracker != nil {
		return l.tracker.Report(ctx, l.db)
	}
	return l.ptracker.Report()
}

// inUse returns how many of the lane's connections are taken.
func (l *lane) inUse() int {
	if l.db != nil {
		return l.db.Stats().InUse
	}
	return int(l.pool.Stat().AcquiredConns())
}

// leaks runs the leak checks on the lane: its pool (with where each
// connection still taken was acquired), its backends on the server, and the
// transactions held across an external call.
func (l *lane) leaks(ctx context.Context, cfg Config) error {
	opts := []leakcheck.Option{leakcheck.WithTimeout(cfg.CheckTimeout)}
	if cfg.Admin != nil {
		opts = append(opts, leakcheck.WithServer(cfg.Admin, l.app))
	}
	if l.db != nil {
		opts = append(opts, leakcheck.WithDB(l.db), leakcheck.WithTracker(l.tracker))
	} else {
		opts = append(opts, leakcheck.WithPgxPool(l.pool, l.ptracker))
	}
	ctx, cancel := context.WithTimeout(ctx, 3*cfg.CheckTimeout)
	defer cancel()
	return leakcheck.Find(ctx, opts...)
}

// poolCloseWait bounds how long a lane waits for its pgx pool to close: a
// pool with a leaked connection never closes (pgxpool.Pool.Close waits for
// it), and is left waiting.
const poolCloseWait = 2 * time.Second

// close closes the lane's pool, bounded.
func (l *lane) close() {
	if l.db != nil {
		_ = l.db.Close()
		if l.closeMock != nil {
			_ = l.closeMock()
		}
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.pool.Close()
	}()
	t := time.NewTimer(poolCloseWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
