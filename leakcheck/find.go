package leakcheck

import (
	"context"
	"fmt"
	"time"
)

// TestingT is the part of testing.TB the Verify functions use.
type TestingT interface {
	Helper()
	Errorf(format string, args ...any)
}

// Find runs every check the options enable — pool (WithDB, WithAcquired),
// server (WithServer), session state (WithSession), long transactions
// (WithLongTransaction, WithTracker) and goroutines (WithGoroutines,
// WithScope) — and returns one error listing every finding (it matches
// ErrLeak), joined with any error that kept a check from running. With no
// check enabled, or WithLongTransaction with neither a tracker nor a server
// to apply it to, it returns an ErrOption error: a check that checks nothing
// is a mistake.
func Find(ctx context.Context, opts ...Option) error {
	c, err := buildConfig(opts)
	if err != nil {
		return err
	}
	if len(c.dbs) == 0 && len(c.acquired) == 0 && !c.server && len(c.sessions) == 0 && !c.goroutines && len(c.scopes) == 0 && c.tracker == nil && len(c.pgxTrackers) == 0 {
		return fmt.Errorf("%w: Find with no check enabled (use WithDB, WithServer, WithSession, WithGoroutines or WithTracker)", ErrOption)
	}
	if c.longTx > 0 && c.tracker == nil && !c.server {
		return fmt.Errorf("%w: WithLongTransaction needs WithTracker or WithServer to look at transactions", ErrOption)
	}
	return c.run(ctx)
}

// VerifyNone reports, through t.Errorf, every finding of Find. Use it at the
// end of a test, while the pools it checks are still open:
//
//	defer leakcheck.VerifyNone(t, leakcheck.WithDB(db), leakcheck.WithGoroutines(goleak.IgnoreCurrent()))
func VerifyNone(t TestingT, opts ...Option) {
	t.Helper()
	if err := Find(context.Background(), opts...); err != nil {
		t.Errorf("%v", err)
	}
}

// run runs the enabled checks in the order that lets things settle: the
// pool first (a connection coming back ends its transaction), then the
// server, the session state, the tracker, and the goroutines last (the
// goroutines database/sql starts to close rows end after the pool settles).
// All polling shares one deadline.
func (c *config) run(ctx context.Context) error {
	deadline := time.Now().Add(c.timeout)
	var findings []Finding
	var errs []error
	add := func(f []Finding, err error) {
		findings = append(findings, f...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, db := range c.dbs {
		add(checkPool(ctx, db, c.tracker, deadline))
	}
	for _, a := range c.acquired {
		add(checkAcquired(ctx, a, c.tracker, deadline))
	}
	if c.server {
		add(checkServer(ctx, c.admin, c.appName, c.longTx, deadline))
	}
	for _, s := range c.sessions {
		add(checkSession(ctx, s.q, s.before))
	}
	if c.tracker != nil {
		if c.longTx > 0 && c.tracker.hasOpenTxOver(c.longTx) {
			// Make sure it is not a connection back in the pool whose
			// transaction end the tracker did not see.
			for _, db := range c.dbs {
				c.tracker.probeIdle(ctx, db)
			}
		}
		add(c.tracker.findings(c.longTx), nil)
	}
	for _, t := range c.pgxTrackers {
		add(t.findings(), nil)
	}
	for _, s := range c.scopes {
		add(checkScope(ctx, s, deadline), nil)
	}
	if c.goroutines {
		add(checkGoroutines(c.goleakOpts), nil)
	}
	return result(findings, errs)
}

// poll calls check until it reports done, the deadline passes or ctx ends,
// sleeping with bounded exponential backoff (100µs doubling up to 20ms)
// between calls. It returns whether check reported done.
func poll(ctx context.Context, deadline time.Time, check func() bool) bool {
	if check() {
		return true
	}
	wait := 100 * time.Microsecond
	const maxWait = 20 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		timer.Reset(min(wait, left)) // Go 1.23+: Reset on an unfired timer needs no drain
		select {
		case <-ctx.Done():
			return check()
		case <-timer.C:
		}
		if check() {
			return true
		}
		wait = min(2*wait, maxWait)
	}
}
