// Package drvwrap wraps a database/sql driver (a driver.Connector or a
// driver.Driver) so that every call database/sql makes into it passes through
// a pair of hooks, Before and After.
//
// It is the one mechanism shared by the fault injector (package faults) and
// the leak tracker (package leakcheck): faults records a trace and returns
// injected errors from Before; leakcheck notes where connections,
// transactions and rows were acquired. Wrappers stack: a connector wrapped by
// one may be wrapped again by the other.
//
// The wrapper exposes exactly the optional driver interfaces database/sql
// changes its behaviour on: driver.SessionResetter and driver.Validator are
// present on a wrapped conn only when the wrapped conn has them (their
// presence decides whether database/sql keeps a conn after a cancelled
// transaction), driver.ColumnConverter on a stmt and io.Closer on a
// connector only when present underneath. The remaining optional interfaces
// (ExecerContext, QueryerContext, ConnPrepareContext, ConnBeginTx, Pinger,
// NamedValueChecker, StmtExecContext, StmtQueryContext, RowsNextResultSet and
// the RowsColumnType* family) are always implemented, and when the wrapped
// value lacks one the wrapper reproduces what database/sql does without it:
// driver.ErrSkip for Exec/Query and argument checks, the same context checks
// and errors as database/sql's fallbacks for Prepare and Begin, and the same
// defaults for column types. The tests check database/sql behaves identically
// with and without the wrapper on sqlmock and on pgx stdlib.
//
// Hooks run only for calls that reach the wrapped driver: a call answered by
// a fallback (driver.ErrSkip, an absent Pinger) is not reported. With no hook
// set the wrapper allocates nothing per call beyond the wrapper values.
//
// The wrapped conn has an Unwrap method returning the driver's own conn, for
// code that reaches it through sql.Conn.Raw (pgx stdlib's (*stdlib.Conn).Conn).
package drvwrap
