// Package chaos runs anyone's database code under concurrent, seeded, random failure on
// real PostgreSQL and checks that no session leaks and no acknowledged write is lost: the
// engine behind a nightly chaos suite, for a Workload of the user's own operations
// (database/sql or pgx).
//
// # A run
//
// Each of N workers owns a scope (Worker.Scope: name its data with it; Workload.Setup
// opens it), a small pool of its own (its own application_name, leak tracker and fault
// injector) and a stream of operations drawn from its stream seed (run seed + worker
// index). Every decision — which operation, its choices (Op.Rand), whether a driver step
// fails and how — comes from a generator seeded by (stream seed, operation index), so one
// worker's stream replays exactly with Workers 1 and Seed the stream seed, and an
// operation keeps its faults when earlier operations are skipped (From) or when faults
// elsewhere are dropped (FaultsAt). Shrink finds the smallest such configuration that
// still fails.
//
// # Faults
//
// A worker's pool goes through a faults.Injector of its own (database/sql: a faults.Wire on
// its connections, and a faults.Server on its application_name when the target has an
// admin pool) or a faults.PgxInjector (pgx), whose decider for each operation is a
// faults.Rate drawn from (stream seed, operation index) among Faults or PgxFaults. The
// faults are played exactly as in the matrix (package scenarios): a dead connection stays
// dead, a failed commit ends the connection, an error inside a transaction aborts it. A
// cancel fault cancels the operation's own context, never another worker's. With
// Config.Panics, a panic is injected at rows-next steps. Server chaos on demand:
// terminate the backends of a random worker, restart the server, pause it.
//
// # Checks
//
// After every operation:
//
//   - pool: the worker's pool has every connection back (with where a leaked one was
//     acquired); long-transaction: no transaction was held across an Op.External call (work
//     that belongs after the commit, done inside the transaction);
//   - swallowed-error: the operation went on after an error in its transaction and
//     committed it (pgx.ErrTxCommitRollback reached the worker);
//   - unexpected-error: it failed with no fault of its own, no server chaos, and an error
//     Workload.Expected does not expect;
//   - panic: it panicked with no panic injected; swallowed-panic: a panic was injected and
//     it reported success;
//   - read: a read that succeeded contradicted the ledger (Op.Saw): an acknowledged write
//     missing — e.g. a read that swallowed an error and answered an empty success — or a
//     write that failed cleanly present;
//   - deadline: it ran longer than Config.OpTimeout of its own time.
//
// Every ServerCheckEvery operations and at quiescence, the server check (no backend of the
// worker's application_name idle in transaction, aborted, active or holding locks). When a
// worker's ledger is full (Config.MaxWrites) and at quiescence: every write the ledger
// holds (Op.Write, Worker.Wrote) is read back with Workload.Lookup — an acknowledged write
// must be stored once, a write that failed cleanly not at all, an ambiguous one (a cut
// after the server had it, a panic, server chaos meanwhile) either way — and every
// Workload invariant is checked; the worker then starts afresh in a new scope, so a long
// run's memory stays flat. At quiescence, the goroutine check.
//
// # Deadlines and load
//
// An operation's own time leaves out the time it was queued for a connection: the clock
// stops while its worker's database/sql pool opens a connection and while it waits for a
// slot of the run's share of the server's connections. DefaultOpTimeout grows with the
// workers per CPU.
package chaos
