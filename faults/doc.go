// Package faults injects failures into database code at any step, on any
// database/sql driver, without a line changed in the code under test.
//
// # Driver level
//
// An Injector wraps a driver.Connector (or a driver.Driver) — pgx stdlib,
// sqlmock or any other — and records every step database/sql takes through
// it as a Trace: connect, begin (with its options), prepare, exec and query
// (with SQL, a stable fingerprint and the argument count), each rows next
// (with the row read) and rows close, commit, rollback, session reset, conn
// close. A Plan says which step fails and how: at step N ("step=7:pgerr=40001")
// or at the nth step matching a kind and an SQL pattern
// ("match=exec~UPDATE threads#2:badconn"). Plans print and parse as one short
// string and round-trip exactly; RandomPlan derives one from a seed and a
// recorded trace, reproducibly.
//
// The fault kinds a plan can name:
//
//   - error: a plain error wrapping ErrInjected;
//   - pgerr=SQLSTATE: a *pgconn.PgError with that code and the severity and
//     message Postgres sends (40001 40P01 23505 57014 57P01 53300 08006, and
//     any other five-character code), so errors.As sees what production shows;
//     the connection-fatal codes (57P01, 08006, 53300) also break the conn;
//   - badconn: driver.ErrBadConn, and the conn stays broken (database/sql
//     discards it, as it would a dead pgx conn);
//   - cancel: cancels the caller's context at that step — the context must
//     come from Injector.Context — and returns its error (context.Canceled);
//   - latency=DURATION: waits, honouring the context, then goes on;
//   - panic: panics with an *InjectedPanic inside the driver call (safe at
//     exec and next steps only: database/sql leaks the conn or deadlocks the
//     Tx when a driver panics elsewhere, so Applicable offers it there);
//   - cut, cut-after, ambiguous: the connection is cut before or after the
//     step's message reaches the server (ambiguous: after a COMMIT was sent,
//     so the server commits while the client sees the connection die); these
//     need a Wire (WithWire) and real Postgres;
//   - terminate, lock, stmt-timeout: the server terminates the session's
//     backend, a conflicting lock makes the step wait until the server
//     cancels it, or the statement is cancelled as a statement_timeout would
//     (57014); cancel-blocked: a conflicting lock makes the step wait, and
//     once the server shows it waiting the caller's context (from
//     Injector.Context) is cancelled: the step must return within
//     CancelBlockedBound, its statement no longer waiting on the server, or
//     the firing's Unheeded says it did not (the lock is released then, so
//     nothing hangs); these need a Server (WithServer) and real Postgres.
//
// # What production shows
//
// Faults that return an error do not call the driver; the injector then leaves
// the connection as a driver that met that error would:
//
//   - an error at a commit or rollback step (any kind that returns one: error,
//     pgerr, badconn, cancel, a latency cut short by the context) ends the
//     connection, as pgx closes a connection whose COMMIT or ROLLBACK failed:
//     the injector closes the driver's conn, so the server ends the session
//     and rolls its transaction back, and every later call on it gets
//     driver.ErrBadConn, so database/sql discards it instead of pooling a
//     connection still inside a transaction.
//   - after a fault, the wrapped driver still ends its own transaction: its
//     Commit or Rollback runs (on the conn the fault closed, where it fails)
//     and its rows and statements are closed, so that what the driver does
//     on the way out — lib/pq ends the goroutine that watches a transaction's
//     context — happens as after a real failure, and is never reported as a
//     leak.
//   - an error at an exec, query, next or prepare step inside a transaction
//     aborts that transaction, as any error does on Postgres: every later
//     exec, query or prepare in it returns a *pgconn.PgError 25P02 (current
//     transaction is aborted) without reaching the driver, and its commit
//     returns pgx.ErrTxCommitRollback (what pgx returns for a COMMIT that
//     Postgres answered with ROLLBACK) after the driver's own Rollback ended
//     the real transaction (the conn stays usable). A rollback ends it as
//     usual. So code that ignores an error and carries on is caught as it
//     would be in production. Steps of an aborted transaction are recorded
//     but no rule matches or fires at them.
//
// # Deciders
//
// What fires where is the injector's Decider: a Plan (Arm, or Use(plan.Decider())) fires
// its rules at their steps; a Rate (NewRate, installed with Use) fails each step with a
// seeded probability, drawing the fault among a FaultSet (e.g. Applicable narrowed to what
// a run wants) — what a chaos run, where a fresh decision is needed at every step of every
// operation, uses. Both injectors play every decider's faults the same way.
//
// Wire level (Wire) and server level (Server) are also usable on their own;
// see their documentation.
//
// # pgx, on the wire
//
// Code that talks to pgx directly (pgxpool, pgx.Tx, sqlc's pgx DBTX) never
// goes through database/sql, so the Injector does not see it. PgxInjector,
// installed on the pool's pgconn.Config, records its steps from the frontend
// messages (one step per protocol request, the same StepKind values and
// Trace format) and fires a Plan there. Its errors are real: the targeted
// request is replaced by one that makes the server itself raise the SQLSTATE
// (or end this connection's backend), so the transaction is exactly as
// aborted, or the connection as broken, as PostgreSQL leaves it; the next
// statement of an aborted transaction gets a real 25P02 and its commit
// pgx.ErrTxCommitRollback. ApplicablePgx lists its faults per step.
//
// An Injector is a value you create, safe for concurrent use; the package has
// no global state. It never imports the code under test.
package faults
