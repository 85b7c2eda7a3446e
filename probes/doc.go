// Package probes runs generic concurrency probes on any database operation
// — a scenarios.Operation, on database/sql (Run) or on pgx directly
// (RunPgx) — against a real PostgreSQL, and reports what broke with where it
// came from.
//
// Two probes, for every operation:
//
//   - PoolOfOne runs the operation alone on a pool of one connection. Code
//     that takes a second connection while it holds one (a query on the pool
//     while its rows or its transaction are still open) waits for ever there:
//     the probe sees the wait as it begins (database/sql's WaitCount, pgxpool's
//     acquire on a full pool), and reports a "second-connection" finding with
//     where the held connection was acquired and the waiting goroutine's
//     stack, then cancels the run. It runs on sqlmock too (Config.Backend
//     faults.Mock), the operation's golden trace as its expectations.
//   - Concurrent runs the operation from several goroutines at once, in
//     rounds, all of a round on one fixture (Setup once per round), each run
//     under a seeded fault of its own. After each round it checks that no run
//     failed without a fault of its own (a "collateral" finding: it waited on
//     a lock, or for a connection, until the probe's deadline), that nothing
//     was left behind (pool, server, long-transaction: leakcheck), and the
//     user's Invariant. Postgres only.
//
// # Fault streams of their own
//
// Step numbers are not deterministic across goroutines: which goroutine's
// statement comes first on a shared pool is up to the scheduler, so a plan
// "fail step 7" on a shared injector hits a different goroutine's work each
// time. Here every goroutine has a pool, an injector and an application_name
// of its own (AppName + "-g<N>"), so the steps an injector counts are one
// goroutine's alone; the goroutines meet where production code meets — the
// server's rows and locks. A fault is armed as a match rule (the nth step of
// a kind with that SQL, from a clean recording) rather than a step index, so
// a warm pool or a reconnect does not move it. Every run's context comes
// from its own injector (faults.Injector.Context, faults.PgxInjector.Context):
// a cancel fault cancels that run's work and no other's.
//
// Which run gets which fault is drawn from the seed alone, before the round
// starts: the clean trace's (step, fault) pairs, shuffled by the seed, are
// handed out in turn to the runs that the seed marks faulted (FaultRate). The
// rounds go on until every pair has run once (at most MaxRounds), so the same
// seed replays the same rounds; the probe stops after the first round with a
// finding. Every finding carries the seed and the command that replays it.
//
// # Collateral failures
//
// A run's deadline (Config.Timeout) is watched by the probe, not carried by
// the run's context: a run still running then is first looked at on the
// server — its backend's lock waits (pg_stat_activity, pg_blocking_pids), the
// backend holding the lock, its application_name and so the goroutine, run
// and round it belongs to, and where that goroutine's connection and
// transaction were acquired (leakcheck's Tracker or PgxTracker) — and only
// then cancelled. The context of a run that returned stays live until the
// round's checks are done: database/sql and pgx roll back a transaction its
// context ends, which would otherwise roll back a leaked transaction before
// anyone could name it. A run that fails with no fault of its own is a
// finding that names what it waited for: the holder of the lock, or the
// connections of its own pool held elsewhere.
//
// # Reports
//
// Findings about something left behind (pool, server, long-transaction,
// goroutines) are root causes: Result.Err lists them first, and
// report.(*Report).AddProbe links each collateral failure to the leaks of the
// goroutine that held what it waited for.
//
// Nothing here knows any particular service; it never imports the code under
// test.
package probes
