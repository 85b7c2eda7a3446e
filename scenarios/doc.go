// Package scenarios is the generic matrix runner: it tries every fault at
// every step of a piece of database code and checks that the error surfaced,
// the state is all-or-nothing and nothing leaked. Nothing here knows about
// any particular service: package threadsuite runs the thread handlers
// through it, and a team runs its own repository code the same way.
//
// # The runner
//
// An [Operation] is a named piece of database code with a fixture:
//
//   - Setup prepares fresh state for one case on a plain, un-instrumented pool
//     (cheaply: new rows, e.g. a new user id per case, on one database per
//     operation — not a database clone per case) and returns a [Fixture];
//   - Run is the code under test, given the instrumented pool and the fixture;
//   - State reads back, on the plain pool, the state Run touches, normalised
//     (no timestamps, no generated ids), as a string;
//   - Retries, optional, says which errors Run retries itself (e.g.
//     serialization failure and deadlock), so that one such fault must end in
//     success rather than in an error.
//
// [NewRunner] records one clean run of the operation under a faults.Injector:
// its trace (the steps) and its before and after states. [Runner.Cases] then
// lists one [Case] per step × per fault that faults.Applicable gives for that
// step on the backend, and [Runner.RunCase] reruns the operation on fresh state
// with that one fault armed (plan "step=N:<fault>"; a Case carries the step's
// faults.StepKind and the faults.Fault, and the clean case, step 0, is
// [StepClean] with the zero Fault) and checks the invariants (see
// [Invariant]):
//
//   - the error surfaced to the caller — or, for a fault the operation
//     retries (Retries) or that database/sql retries (driver.ErrBadConn on
//     another connection, believed only when the trace shows the retry), the
//     retry succeeded; a failed rollback need not reach the caller;
//   - the state read back is exactly the before-state or exactly the
//     after-state, and the after-state only when the caller was told of success
//     (an ambiguous commit may leave either, and the caller must be told it
//     failed; an autocommit write that reached the server is committed
//     whatever the caller hears).
//
// What correct code does with each fault — database/sql's retries, autocommit
// statements, faults only where production can show them, which faults may
// break a pooled connection (the next case then starts on a fresh pool, so
// every case replays alone) — is stated in one place, semantics.go, and
// tested against pgx stdlib and lib/pq on PostgreSQL. A clean run that records
// no step on the pool it was given is an error, and a configuration that
// cannot apply a fault family says so ([Runner.Unavailable], Report.Unavailable).
//   - leakcheck holds: the instrumented pool has no connection in use, the
//     server holds no backend of the case's application_name idle in
//     transaction, aborted or active and no lock of theirs, no transaction
//     was held open across an external call (see below), and no goroutine
//     the case's run started (a leakcheck.Scope, inherited by every
//     goroutine it starts) outlives the case — goroutines of other cases
//     and other tests do not count;
//   - on Postgres, every connection the operation gave back to the pool
//     carries the session state a fresh one carries (read at recording):
//     no session-level SET, advisory lock, temporary table, LISTEN or
//     prepared statement left for the next user ([InvSession]; off with
//     [Config].NoSessionCheck);
//   - every database call ran on the caller's context: a cancel fault that
//     finds a context of the operation's own (context.Background()) at a
//     call is an [InvContext] finding — on the pgx wire, a request pgx did
//     not give up on once the fault cancelled the caller's context (but a
//     connect, which pgxpool makes under its own) — and so is a statement still blocked
//     on a lock faults.CancelBlockedBound after the fault "cancel-blocked"
//     cancelled the caller's context (off with [Config].NoCancelBlocked);
//   - on sqlmock, the expectations generated from the operation's golden trace
//     (the prefix before the fault, then the rollback, then the whole unit
//     again when it retries) were met (ExpectationsWereMet).
//
// Every case runs under a deadline ([Config].Timeout); a hang is a finding that
// carries the goroutine dump. Every other wait of a case is bounded too —
// Setup and the state read-back by the same timeout, the leak and session
// checks by [Config].CheckTimeout, clearing the server — and a wait that
// outlives its bound is a deadline finding naming the sessions waiting for
// a lock and the ones holding it; what a case left behind is ended before
// the next case's Setup, so one leaked lock does not stop the matrix. The checks run while the case's context is
// still live (database/sql rolls back a forgotten transaction when its
// context ends, which would hide it); after a case with findings the runner
// terminates the sessions of the application name and opens a fresh pool, so
// that one leak is not blamed on the next case.
//
// Left out of the default faults, on purpose: panic anywhere but at a rows
// "next" step (a driver call that panics inside database/sql never gives its
// connection back, or keeps the Tx's lock so that any Rollback deadlocks: no
// caller can handle it), and lock or stmt-timeout on a table the transaction
// under test already touched (the other session cannot take its lock). A
// commit or rollback replaced by an injected fault ends its connection (the
// injector closes it, as pgx closes a connection whose commit or rollback
// failed), so the server transaction never outlives it.
//
// [Run] runs every case of some operations and returns a [Report] (for
// programs: the CLI, the mutation proof); [RunTests] makes each case a subtest
// named "operation/step-N-kind/fault" (e.g. "UpdateThread/step-7-commit/pgerr=40001"),
// so that `go test -run` replays exactly one, and a failure message names the
// invariant, the step with its SQL, the fault and that replay command:
//
//	go test ./mypkg -run '^TestMatrix$/postgres/UpdateThread/step-7-commit/^pgerr=40001$'
//
// (the package directory is the one the test runs in, relative to its
// module's root).
//
// # pgx-native code
//
// Code on pgx directly (a *pgxpool.Pool, a pgx.Tx, sqlc's pgx DBTX) sets
// Operation.RunPgx instead of Run (exactly one of the two): it gets a
// *pgxpool.Pool opened from Config.DSN; code on a pgx.Tx or a DBTX begins it,
// or takes it, from that pool inside RunPgx. Setup and State still work on
// Config.DB. The steps are recorded and the faults fired on the wire by a
// faults.PgxInjector (faults.ApplicablePgx per step: real SQLSTATE errors
// raised by the server, cancel, latency, cut, cut-after, ambiguous commit,
// terminate of the connection's own backend); the invariants are the same,
// with the pool check on pool.Stat().AcquiredConns() and each connection
// still acquired named with where it was taken (leakcheck.PgxTracker). Each
// case runs on a fresh pool (pgx caches prepared statements per
// connection, so a warm pool would change the trace), which therefore
// starts with a connect step; the pool never pings (ShouldPing). A pool
// with a leaked connection never closes (pgxpool.Pool.Close waits for it):
// the runner waits 2s, then leaves it. pgx operations run on Postgres only:
// sqlmock mocks database/sql, which pgx code does not go through, so a
// RunPgx operation on the Sqlmock backend is a configuration error.
//
// # External calls
//
// Code that calls something outside the database (an HTTP service, a model,
// a queue) wraps each such call with [External]. In a matrix case the call
// goes through the case's leakcheck.Tracker, and a transaction of the case's
// pool open across it is an [InvLongTx] finding; outside the runner External
// just makes the call.
//
//	if err := tx.Commit(); err != nil { // commit first ...
//		return err
//	}
//	return scenarios.External(ctx, "notify", func(ctx context.Context) error {
//		return notifier.Notify(ctx, id) // ... then call out
//	})
//
// # Backends
//
// On [Postgres] the runner opens its instrumented pools from [Config].DSN (or
// [Config].Connector), reads fixtures and state on [Config].DB and checks the
// server through [Config].Admin. With a DSN each instrumented pool's sessions
// carry an application_name of their own, derived from [Config].AppName
// ("<AppName>-c<n>"), and the server check, the terminate fault and the
// clearing of a broken case's sessions look at that name alone; with a
// Connector they carry [Config].AppName, as the plain pool's do. On [Sqlmock] there is no
// database: Setup is called with a nil *sql.DB and returns placeholder values,
// State is not called, and the rows every query returns come from the
// operation's golden trace, a file "<operation>.trace" in [Config].Golden.
//
// # Golden traces
//
// A golden trace is one clean run of the operation on PostgreSQL, normalised
// (times, UUIDs): [RecordGolden] returns its text. In a test of the package
// that owns the operations, [GoldenTests] records each one and compares it
// with dir/<operation>.trace, or writes the files when asked to:
//
//	var update = flag.Bool("update", false, "rewrite the golden traces in testdata")
//
//	func TestGolden(t *testing.T) {
//		scenarios.GoldenTests(t, "testdata", *update, pgConfig(t), myOperations()...)
//	}
//
// `go test -run TestGolden -update` records them; the sqlmock matrix then reads
// them with Config{Backend: Sqlmock, Golden: os.DirFS("testdata")} (or an
// embedded copy, for programs).
//
// # Parallel cases
//
// [Config].Parallel (the CLI's -parallel, default [DefaultParallel], the CPU
// count) runs that many cases at once: [Run] and [Runner.RunCases] on
// goroutines, [RunTests] as parallel subtests (t.Parallel; go test's
// -parallel bounds them too, and -run still picks one case). Each case runs
// on a lane of its own — an instrumented pool, injector, wire and, on
// Postgres, application_name — so its pool, server and goroutine checks see
// that case alone, and a leak in one case is never blamed on another; a case
// whose fault locks a table from another session (lock, stmt-timeout,
// cancel-blocked) runs alone, since every case touching that table would
// wait for the lock. The verdicts are those of the sequential run
// ([Report.VerdictDiff] compares two runs). Cases of one operation run side
// by side, operations one after another.
//
// What the runner cannot isolate is the operation's own data: each case's
// Setup must create state no other case reads or writes (a new user, a new
// key — unique under concurrency: a sequence or a random id, not "the count
// of rows plus one" read without a lock), and State must read that state
// alone. A Setup that returns the fixture of a case running beside it is a
// setup finding. Parallel needs a DSN on Postgres (the runner names each
// lane's sessions on the DSN's config).
//
// # Client disconnects
//
// With [Config].Disconnect the runner plays a client that goes away: at each
// step it cancels the context the caller gave (fault "cancel") and nothing
// needs to reach the caller; the state and leak invariants still hold.
// Package threadsuite drives its HTTP operations this way.
package scenarios
