// Package chaos runs the thread handlers under concurrent, seeded, random failure and checks
// that no session leaks and no acknowledged write is lost — the engine behind
// `sessionsafe chaos` and `sessionsafe replay -seed`.
//
// # Postgres
//
// Each of N workers owns a user, a small pool of its own (its own application_name, its own
// leak tracker and fault hooks) and a stream of operations drawn from its stream seed
// (run seed + worker index). Every decision — which operation, which thread, whether a
// driver step fails and how — comes from a generator seeded by (stream seed, operation
// index), so one worker's stream replays exactly with -workers 1 -seed <stream seed>, and
// an operation keeps its faults when earlier operations are skipped (-from) or when faults
// elsewhere are dropped (-faults-at).
//
// After every operation the worker's pool must have every connection back (leakcheck pool
// check, with the tracker's attribution), no transaction may have been held across the
// title generator (long-transaction check), and an operation that failed with no fault of
// its own is a finding unless server chaos is on. The server check (no backend of the
// worker's application_name idle in transaction, aborted, active or holding locks) runs
// every 200 operations and at quiescence, with the goroutine check. Every 32 threads, and at
// the end, a worker's ledger is checked against the database — every acknowledged write is
// there, no write that failed cleanly is there, no message was stored twice, seq is
// gap-free — and the worker starts afresh under a new user, so a long run's memory stays
// flat. A write is ambiguous — may or may not be there — when its commit was cut after the
// server committed or when server chaos (a terminated backend, a restart, a pause)
// overlapped it.
//
// # Deadlines and load
//
// An operation still running after Config.OpTimeout of its own time is a deadline
// violation. Its own time leaves out the time it was queued for a connection: the clock
// stops while its worker's pool opens a connection (the server forking and authenticating a
// backend, which on a busy machine with hundreds of workers dialling at once takes seconds)
// and while it waits for a slot of the run's share of the server's connections — when the
// workers' pools could hold more connections than the server has free (max_connections,
// less its reserve and the sessions already open), they share what it has, an idle
// connection is closed rather than kept, and a worker waits for a slot another worker's
// connection holds. Either wait is load, not a finding. Waiting for a connection of its own
// pool is not left out: a worker runs one operation at a time and the handlers use one
// connection at a time, so its pool is empty only when its own code holds the connections.
// Time spent waiting for a CPU or for a row lock is counted: the deadline's default
// (DefaultOpTimeout) grows with the workers per CPU so that a correct run at many workers
// stays within it, and the workers' users and threads are their own, so a lock wait is on
// the worker's own sessions.
//
// Server chaos on demand: terminate the backends of a random worker, restart the server,
// pause it briefly.
//
// # Sqlmock
//
// On sqlmock the workers draw random cases of the step × fault matrix (package scenarios)
// and run them concurrently; each finding is a violation whose replay is the matrix case.
//
// # Faults
//
// Each worker's pool goes through a faults.Injector of its own (with a faults.Wire on its
// connections, and a faults.Server on its application_name when the run has an admin
// pool), whose decider for each operation is a faults.Rate seeded by (stream seed,
// operation index): a fresh decision at every step, drawn among Faults — what
// faults.Applicable offers on Postgres at a connect, begin, prepare, exec, query, next or
// commit, less the lock kinds and panics, latency 2ms. So the faults are played exactly
// as in the matrix: a dead connection stays dead, a failed commit ends the connection (the
// server rolls the transaction back), an error inside a transaction aborts it (25P02 after
// it, pgx.ErrTxCommitRollback at its commit). That error reaching a worker is a violation
// (swallowed-error: the code went on after an error in its transaction and committed it),
// as in package scenarios; the write failed, so the ledger has it as not stored. A
// cut-after or an ambiguous commit leaves the write's outcome unknown: ambiguous in the
// ledger. A cancel fault cancels the operation's own context (Injector.Context).
package chaos
