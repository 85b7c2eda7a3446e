// Package leakcheck finds what a piece of database code left behind after it
// returned, and names where it came from.
//
// It checks five things, each as a pair of a Find function for programs
// (an error that lists every finding) and a Verify function for tests:
//
//   - goroutines: none beyond a baseline (goleak underneath, with a short
//     commented ignore list for the background goroutines of database/sql and
//     pgx) — FindGoroutines, VerifyGoroutines; or none left of those started
//     inside a Scope (pprof labels, inherited by every goroutine started from
//     a marked one), which is safe next to parallel tests — EnterScope,
//     FindScope, VerifyScope;
//   - pool connections: sql.DBStats.InUse back to 0, polled with bounded
//     exponential backoff to a deadline — FindPool, VerifyPool;
//   - server sessions (PostgreSQL): no backend of one application_name left
//     "idle in transaction", "idle in transaction (aborted)" or "active", no
//     lock held by those backends, no prepared transaction left behind —
//     FindServer, VerifyServer;
//   - session state left on a pooled connection: a session-level SET, an
//     advisory lock, a temp table, a LISTEN, a prepared statement — compared
//     against a snapshot taken before — SnapshotSession, FindSession,
//     VerifySession;
//   - long transactions: a transaction open longer than a threshold, or held
//     across a call the caller marks as external (Tracker.External).
//
// Find and VerifyNone run every check the options enable, in one call.
//
// A Tracker wraps a driver.Connector (through internal/drvwrap) and records,
// at bounded cost, where each connection was taken into use, each transaction
// begun and each rows opened. Given to a check with WithTracker, it turns
// "1 connection still in use" into the function and line that took it.
//
// For a pgxpool.Pool, a PgxTracker installed on the pool's config (as its pgx
// tracer) does the same: WithPgxPool checks that no connection stays
// acquired and names where each one still acquired was taken, and the
// transaction it holds. A connection the code never gives back also keeps
// pgxpool.Pool.Close waiting forever: close such a pool with a bound.
//
// Limits, stated plainly: the baseline goroutine check cannot tell which
// parallel test started a goroutine — use a Scope in parallel tests, or take
// the baseline (goleak.IgnoreCurrent) right before the code under test; a
// Scope does not see goroutines the code hands work to that were started
// before it (a worker pool); the session-state check compares one connection with itself, so it
// needs a *sql.Conn or a pool limited to one connection; database/sql never
// tells a driver when a connection goes back to the pool, so once a pool
// check has found a leak the Tracker briefly takes and pings each idle
// connection to tell them from the ones still held (the pings pass through
// any wrapper stacked above the tracker).
package leakcheck
