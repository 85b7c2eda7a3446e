package leakcheck

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// FindPool checks that every connection of db is back in the pool
// (sql.DBStats.InUse == 0), polling to the deadline set by WithTimeout. With
// WithTracker, the error names where each connection still in use was
// acquired and what it still holds. Other options are ignored.
func FindPool(ctx context.Context, db *sql.DB, opts ...Option) error {
	c, err := buildConfig(opts)
	if err != nil {
		return err
	}
	f, err := checkPool(ctx, db, c.tracker, time.Now().Add(c.timeout))
	return result(f, errList(err))
}

// VerifyPool reports the findings of FindPool through t.
func VerifyPool(t TestingT, db *sql.DB, opts ...Option) {
	t.Helper()
	if err := FindPool(context.Background(), db, opts...); err != nil {
		t.Errorf("%v", err)
	}
}

func checkPool(ctx context.Context, db *sql.DB, tr *Tracker, deadline time.Time) ([]Finding, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: pool check on a nil *sql.DB", ErrOption)
	}
	start := time.Now()
	var st sql.DBStats
	if poll(ctx, deadline, func() bool { st = db.Stats(); return st.InUse == 0 }) {
		return nil, nil
	}
	return []Finding{{
		Check: CheckPool,
		Summary: fmt.Sprintf("%s still in use after %v (%d open, %d idle): it was never given back to the pool (rows not closed, a transaction not ended, a *sql.Conn not closed)",
			plural(st.InUse, "connection"), time.Since(start).Round(time.Millisecond), st.OpenConnections, st.Idle),
		Detail: heldDetail(ctx, tr, db),
	}}, nil
}

func checkAcquired(ctx context.Context, a acquiredSource, tr *Tracker, deadline time.Time) ([]Finding, error) {
	start := time.Now()
	var n int
	if poll(ctx, deadline, func() bool { n = a.fn(); return n == 0 }) {
		return nil, nil
	}
	f := Finding{
		Check:   CheckPool,
		Summary: fmt.Sprintf("%s: %s still acquired after %v", a.name, plural(n, "connection"), time.Since(start).Round(time.Millisecond)),
	}
	switch {
	case a.detail != nil:
		f.Detail = a.detail()
	case tr != nil:
		f.Detail = heldDetail(ctx, tr, nil)
	}
	return []Finding{f}, nil
}

func heldDetail(ctx context.Context, tr *Tracker, db *sql.DB) string {
	if tr == nil {
		return "    (wrap the connector with a leakcheck.Tracker and pass WithTracker to see where it was acquired)"
	}
	if db != nil {
		tr.probeIdle(ctx, db)
	}
	r := tr.heldReport()
	if r == "" {
		return "    (the tracker saw no connection of this pool in use: was the pool opened on tracker.WrapConnector?)"
	}
	return r
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func errList(err error) []error {
	if err == nil {
		return nil
	}
	return []error{err}
}
