package scenarios

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// lane is where one case at a time runs: an instrumented pool of its own,
// its own injector and wire, and on Postgres an application_name of its own,
// so that the server check, the terminate fault and the clearing of what a
// case left behind see that lane's sessions alone. Cases on different lanes
// run side by side; a lane's pool stays warm across its cases and is rebuilt
// after one that left something behind (dirty) or may have broken a pooled
// connection (stale).
type lane struct {
	app     string           // the application_name of its connections (Postgres)
	base    driver.Connector // opens its connections (database/sql operations on Postgres)
	wire    *faults.Wire     // its connections' wire; nil: no wire faults
	inj     *faults.Injector
	tracker *leakcheck.Tracker // attribution of pool leaks
	pool    *sql.DB
	dirty   bool // a case left something behind: end the sessions, then a fresh pool
	stale   bool // a case's fault may have broken a pooled conn: a fresh pool

	noConnect atomic.Bool // set while the pool may only hand out the connections it holds (noConnectGate)

	px *pgxRun // RunPgx operations: the lane's pool configuration, injector and pool
}

// errNoConnect is what a lane's connector answers while its noConnect is set.
var errNoConnect = errors.New("scenarios: no new connection while the session check runs")

// noConnectGate opens connections through Connector unless *refuse is set,
// when it answers errNoConnect: a check that means to look at the
// connections a pool holds does not pay for, nor look at, a new one.
type noConnectGate struct {
	driver.Connector
	refuse *atomic.Bool
}

// Connect implements driver.Connector.
func (g noConnectGate) Connect(ctx context.Context) (driver.Conn, error) {
	if g.refuse.Load() {
		return nil, errNoConnect
	}
	return g.Connector.Connect(ctx)
}

// laneSeq numbers lanes across the process, so that two runners on one
// server never share an application_name.
var laneSeq atomic.Uint64

// laneAppName returns an application_name of a lane's own, derived from
// base and short enough that the server (which keeps 63 bytes) tells it from
// base and from every other lane.
func laneAppName(base string) string {
	if base == "" {
		base = "sessionsafe"
	}
	if len(base) > 48 {
		base = base[:40] + base[len(base)-8:]
	}
	return base + "-c" + strconv.FormatUint(laneSeq.Add(1), 10)
}

// DefaultParallel is the number of cases Run runs at once when asked for
// "as many as the machine has": the CPUs this process may use.
func DefaultParallel() int { return runtime.GOMAXPROCS(0) }

// takeLane returns a free lane of the runner, or a new one.
func (r *Runner) takeLane() *lane {
	r.lanesMu.Lock()
	defer r.lanesMu.Unlock()
	if n := len(r.free); n > 0 {
		l := r.free[n-1]
		r.free = r.free[:n-1]
		return l
	}
	l := r.newLane()
	r.lanes = append(r.lanes, l)
	return l
}

// putLane gives l back to the runner.
func (r *Runner) putLane(l *lane) {
	r.lanesMu.Lock()
	defer r.lanesMu.Unlock()
	r.free = append(r.free, l)
}

// newLane makes a lane (without a pool yet: see newPool, openPgxPool).
func (r *Runner) newLane() *lane {
	l := &lane{app: r.cfg.AppName}
	switch {
	case r.pxBase != nil:
		c := r.pxBase.Copy()
		l.app = laneAppName(r.cfg.AppName)
		c.ConnConfig.RuntimeParams["application_name"] = l.app
		l.px = &pgxRun{base: c, inj: faults.NewPgxInjector()}
		l.px.inj.Install(&c.ConnConfig.Config)
	case r.connCfg != nil:
		c := r.connCfg.Copy()
		l.app = laneAppName(r.cfg.AppName)
		c.RuntimeParams["application_name"] = l.app
		l.wire = faults.NewWire()
		l.wire.Install(&c.Config)
		l.base = stdlib.GetConnector(*c)
	case r.cfg.Backend == Postgres:
		l.base, l.wire = r.cfg.Connector, r.cfg.Wire
	}
	return l
}

// sharesAppName reports whether l's sessions carry Config.AppName, the
// name of the plain pool's sessions too (a Config.Connector, whose
// application_name the runner cannot change).
func (l *lane) sharesAppName(cfg Config) bool { return l.app == cfg.AppName && cfg.DB != nil }

// claimFixture (Postgres) records fx as the fixture of the case on l until
// the returned release, and fails when a case running beside it on another
// lane has an equal one: both would write and read back the same state, and
// each would see the other's writes.
func (r *Runner) claimFixture(l *lane, fx Fixture) (release func(), err error) {
	if r.cfg.Backend != Postgres {
		return func() {}, nil
	}
	r.lanesMu.Lock()
	defer r.lanesMu.Unlock()
	for other, ofx := range r.live {
		if other != l && reflect.DeepEqual(ofx, fx) {
			return nil, fmt.Errorf("the operation's Setup gave this case the same fixture as a case running beside it (%v): cases that run side by side (Config.Parallel) "+
				"each need state of their own, or each sees the other's writes; make what Setup creates unique under concurrency (a sequence, a random id), or run one case at a time", fx)
		}
	}
	if r.live == nil {
		r.live = map[*lane]Fixture{}
	}
	r.live[l] = fx
	return func() {
		r.lanesMu.Lock()
		defer r.lanesMu.Unlock()
		delete(r.live, l)
	}, nil
}

// lockingFault reports whether f takes a lock on a table from another
// session: every other case touching that table would wait for it, so a
// case with such a fault runs alone.
func lockingFault(f faults.Fault) bool {
	return f.Kind == faults.KindLock || f.Kind == faults.KindStmtTimeout || f.Kind == faults.KindCancelBlocked
}

// RunCases runs cases on r, parallel of them at once (at most 1: one after
// another), calls done (if not nil) with each result as it ends, one call
// at a time, and returns the results in the order of cases. Cases on
// different lanes cannot see each other: each runs on a pool and
// application_name of its own, its goroutine check counts the goroutines
// its own run started, and a case whose fault locks a table from another
// session runs alone. A cancelled ctx stops starting cases; the results
// of those not run are left out.
func (r *Runner) RunCases(ctx context.Context, cases []Case, parallel int, done func(Result)) []Result {
	parallel = max(1, min(parallel, len(cases)))
	results := make([]Result, len(cases))
	ran := make([]bool, len(cases))
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(cases) || ctx.Err() != nil {
					return
				}
				res := r.RunCase(ctx, cases[i])
				mu.Lock()
				results[i], ran[i] = res, true
				if done != nil {
					done(res)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out := results[:0]
	for i, res := range results {
		if ran[i] {
			out = append(out, res)
		}
	}
	return out
}

// pgxRun is the pgx side of a lane whose operation sets RunPgx: the pool
// configuration every case's pool is opened from, the injector on its wire,
// and the pool of the case under way.
type pgxRun struct {
	base    *pgxpool.Config
	inj     *faults.PgxInjector
	tracker *leakcheck.PgxTracker
	pool    *pgxpool.Pool
}

// parseConnConfig parses cfg.DSN for a lane's connections.
func parseConnConfig(cfg Config, op Operation) (*pgx.ConnConfig, error) {
	pc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("scenarios: new runner for %s: parse DSN: %w", op.Name, err)
	}
	return pc, nil
}
