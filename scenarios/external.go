package scenarios

import (
	"context"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// trackerKey is the context key of the case's leakcheck.Tracker.
type trackerKey struct{}

// withTracker returns ctx carrying t, for External.
func withTracker(ctx context.Context, t *leakcheck.Tracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

// External runs fn, a call to something outside the database (an HTTP
// service, a model, a message queue), on behalf of the code under test, and
// returns fn's error. Wrap each such call of an operation's Run with it.
//
// Inside a matrix case (ctx derived from the one the runner passes to
// Operation.Run) it runs fn through the case's leakcheck.Tracker
// (Tracker.External): a transaction of the case's pool open when fn starts
// and still open when it returns was held across the call, and the case
// reports it as an InvLongTx finding. Outside the runner it just calls fn.
func External(ctx context.Context, name string, fn func(context.Context) error) error {
	if t, ok := ctx.Value(pgxTrackerKey{}).(*leakcheck.PgxTracker); ok {
		return t.External(ctx, name, fn) // a RunPgx case
	}
	if t, ok := ctx.Value(trackerKey{}).(*leakcheck.Tracker); ok {
		return t.External(ctx, name, fn)
	}
	return fn(ctx)
}

// WithTracker returns ctx carrying t, so that External called with ctx (or a
// context derived from it) runs its call through t (Tracker.External). The
// matrix does this for every case; a harness of its own that runs an
// Operation (the concurrency probes, a chaos run) does it for each run.
func WithTracker(ctx context.Context, t *leakcheck.Tracker) context.Context {
	return withTracker(ctx, t)
}

// WithPgxTracker is WithTracker for a RunPgx operation: External called
// with ctx runs its call through t (PgxTracker.External).
func WithPgxTracker(ctx context.Context, t *leakcheck.PgxTracker) context.Context {
	return withPgxTracker(ctx, t)
}
