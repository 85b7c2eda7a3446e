// Package bank is a small money-transfer store written the way most Go
// services talk to PostgreSQL through database/sql: a [Store] over a
// *sql.DB, a transaction helper with a deferred rollback, an autocommit
// insert, paged reads that close their rows, a batch lookup on a statement
// prepared once on the pool, and a transfer that locks both
// accounts in id order inside one transaction and tells a [Notifier] once it
// is committed.
//
// The store knows nothing of sessionsafe; [Catalog] describes it to the sessionsafe
// command line (cmd/bankcheck is a main that runs it, `go run ./examples/bank/cmd/bankcheck
// matrix`). Its tests put every method through the
// fault matrix (every fault at every driver step) on real PostgreSQL, once
// through pgx's database/sql driver and once through lib/pq, and show that
// the matrix catches session bugs planted in copies of the same code: a
// transaction helper without its deferred rollback, rows left open on an
// early return, a transaction held across the notifier, and an error
// swallowed after a rollback.
//
// The SQL is plain PostgreSQL with $n placeholders, so any database/sql
// driver for PostgreSQL runs it; [Migrate] applies the embedded schema.
package bank
