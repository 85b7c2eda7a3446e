package leakcheck

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.uber.org/goleak"
)

// DefaultTimeout is how long the checks poll for things to settle (a
// connection coming back to the pool, a backend going idle) before they
// report a leak. Change it with WithTimeout.
const DefaultTimeout = 2 * time.Second

// Option configures Find, VerifyNone and the per-check functions.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type acquiredSource struct {
	name   string
	fn     func() int
	detail func() string // where the held connections were acquired; nil: from the Tracker
}

type sessionCheck struct {
	q      Querier
	before Session
}

type config struct {
	dbs         []*sql.DB
	acquired    []acquiredSource
	admin       *sql.DB
	appName     string
	server      bool
	goroutines  bool
	goleakOpts  []goleak.Option
	scopes      []*Scope
	tracker     *Tracker
	pgxTrackers []*PgxTracker
	sessions    []sessionCheck
	timeout     time.Duration
	longTx      time.Duration
	errs        []error
}

// defaults is the one place every default is set.
func defaults() config {
	return config{timeout: DefaultTimeout}
}

func buildConfig(opts []Option) (config, error) {
	c := defaults()
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c, errors.Join(c.errs...)
}

// WithDB enables the pool check on db: sql.DBStats.InUse must come back to 0
// before the deadline. It may be given more than once.
func WithDB(db *sql.DB) Option {
	return optionFunc(func(c *config) {
		if db == nil {
			c.errs = append(c.errs, fmt.Errorf("%w: WithDB(nil)", ErrOption))
			return
		}
		c.dbs = append(c.dbs, db)
	})
}

// WithAcquired enables a pool check on any other pool: acquired must come
// back to 0 before the deadline. For a pgxpool.Pool:
//
//	leakcheck.WithAcquired("pgxpool", func() int { return int(pool.Stat().AcquiredConns()) })
func WithAcquired(name string, acquired func() int) Option {
	return optionFunc(func(c *config) {
		if acquired == nil {
			c.errs = append(c.errs, fmt.Errorf("%w: WithAcquired(%q, nil)", ErrOption, name))
			return
		}
		c.acquired = append(c.acquired, acquiredSource{name: name, fn: acquired})
	})
}

// WithServer enables the server check (PostgreSQL): through admin (a pool on
// the same server, with a different application_name), no backend named
// appName may be idle in transaction, aborted or still active, hold a lock,
// or have left a prepared transaction.
func WithServer(admin *sql.DB, appName string) Option {
	return optionFunc(func(c *config) {
		switch {
		case admin == nil:
			c.errs = append(c.errs, fmt.Errorf("%w: WithServer with a nil admin pool", ErrOption))
		case appName == "":
			c.errs = append(c.errs, fmt.Errorf("%w: WithServer with an empty application_name (it would match every unnamed backend)", ErrOption))
		default:
			c.server, c.admin, c.appName = true, admin, appName
		}
	})
}

// WithGoroutines enables the goroutine check: no goroutine beyond those the
// goleak options exclude and the package's short ignore list
// (IgnoredGoroutines). Pass goleak.IgnoreCurrent(), taken before the code
// under test ran, as the baseline.
func WithGoroutines(opts ...goleak.Option) Option {
	return optionFunc(func(c *config) {
		c.goroutines = true
		c.goleakOpts = append(c.goleakOpts, opts...)
	})
}

// WithTracker attributes pool leaks to where they were acquired, and enables
// the long-transaction check on what the tracker recorded.
func WithTracker(t *Tracker) Option {
	return optionFunc(func(c *config) {
		if t == nil {
			c.errs = append(c.errs, fmt.Errorf("%w: WithTracker(nil)", ErrOption))
			return
		}
		c.tracker = t
	})
}

// WithSession enables the session-state check: the connection behind q must
// carry the same session state as in before (see SnapshotSession).
func WithSession(q Querier, before Session) Option {
	return optionFunc(func(c *config) {
		if q == nil {
			c.errs = append(c.errs, fmt.Errorf("%w: WithSession with a nil querier", ErrOption))
			return
		}
		c.sessions = append(c.sessions, sessionCheck{q: q, before: before})
	})
}

// WithLongTransaction flags a transaction open longer than d: on the server
// (with WithServer, from pg_stat_activity.xact_start) and in the tracker
// (with WithTracker, also transactions that already ended).
func WithLongTransaction(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: WithLongTransaction(%v): the threshold must be positive", ErrOption, d))
			return
		}
		c.longTx = d
	})
}

// WithTimeout sets how long the checks poll for things to settle before
// reporting (DefaultTimeout unless set). The context's deadline, if sooner,
// wins.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: WithTimeout(%v): the timeout must be positive", ErrOption, d))
			return
		}
		c.timeout = d
	})
}
