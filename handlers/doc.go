// Package handlers is the system under test of sessionsafe: eight chat-thread
// operations (list, create, get, update, delete, auto-rename, get messages,
// send message) over database/sql, with an HTTP API.
//
// Every operation runs through one unit of work: begin (read-only for reads),
// run, commit; on an error, a panic or a cancelled context the transaction is
// rolled back (and a panic re-raised after the rollback); a failed rollback is
// joined to the first error, never hides it; the whole unit is retried, a
// bounded number of times, on serialization failure (40001) and deadlock
// (40P01). Repositories take a DBTX (what *sql.DB, *sql.Tx and *sql.Conn all
// offer) and run in the session they are handed; they never open their own.
//
// No transaction or connection is held across an external call: AutoRename
// reads in one transaction, calls the TitleGenerator with none open, writes
// in a second transaction and notifies after the commit. Concurrency is
// handled in SQL: metadata patches merge with || in one UPDATE, message order
// comes from the thread's counter taken under its row lock, and a client
// message id makes a retried send idempotent.
//
// A thread that is missing, archived or owned by another user is ErrNotFound,
// so existence never leaks. Input is validated before any database call and
// rejected with a *ValidationError naming the field.
//
// Errors of bad input are returned as *ValidationError (match with errors.As
// and a *ValidationError target). StatusOf and the Code* constants are the
// HTTP error mapping; the Op* operation names prefix every error. An
// operation that fails returns the zero value with its error, never a row
// its failed unit of work read or did not store.
package handlers
