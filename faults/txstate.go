package faults

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// TxState is the aborted-transaction bookkeeping of an injector, keyed by connection id:
// whether a connection is inside a transaction, and whether an error injected inside it
// aborted it, as any error does on Postgres. Both the Injector and the chaos engine's rate
// injector use it, so that they play an aborted transaction the same way. The zero value is
// ready to use; it is not safe for concurrent use (an injector calls it under its own lock).
type TxState struct {
	inTx    map[uint64]bool
	aborted map[uint64]bool // conn id -> its transaction is aborted by an injected error (25P02 until it ends)
}

// TxVerdict is what TxState.Before decides for a step.
type TxVerdict int

const (
	// TxProceed lets the step go on.
	TxProceed TxVerdict = iota
	// TxFailStatement answers the step with PgError(CodeInFailedTransaction) (25P02)
	// without reaching the driver: a statement of an aborted transaction.
	TxFailStatement
	// TxCommitRollback answers the commit of an aborted transaction with
	// pgx.ErrTxCommitRollback; the caller ends the real transaction (EndAbortedTx).
	TxCommitRollback
)

// Before decides step kind k on connection conn: TxFailStatement for an exec, query or
// prepare of an aborted transaction, TxCommitRollback for its commit (the transaction is
// then over), TxProceed otherwise (a rollback, begin or close ends the aborted state).
func (s *TxState) Before(conn uint64, k StepKind) TxVerdict {
	if !s.aborted[conn] {
		return TxProceed
	}
	switch k {
	case StepExec, StepQuery, StepPrepare:
		// Postgres answers every statement of an aborted transaction
		// with 25P02 until it ends.
		return TxFailStatement
	case StepCommit:
		// Postgres answers the COMMIT of an aborted transaction with
		// ROLLBACK, which pgx reports as ErrTxCommitRollback.
		s.End(conn)
		return TxCommitRollback
	case StepRollback, StepBegin, StepClose:
		delete(s.aborted, conn)
	}
	return TxProceed
}

// After records the driver's answer err to step kind k on conn: a begin that succeeded
// starts a transaction; a commit, rollback or close ends it.
func (s *TxState) After(conn uint64, k StepKind, err error) {
	switch k {
	case StepBegin:
		if s.inTx == nil {
			s.inTx = map[uint64]bool{}
		}
		s.inTx[conn] = err == nil
	case StepCommit, StepRollback, StepClose:
		s.End(conn)
	}
}

// Injected records that an error was injected at step kind k on conn (whose connection is
// still alive): at an exec, query, next or prepare inside a transaction it aborts the
// transaction.
func (s *TxState) Injected(conn uint64, k StepKind) {
	switch k {
	case StepExec, StepQuery, StepNext, StepPrepare:
		if s.inTx[conn] {
			if s.aborted == nil {
				s.aborted = map[uint64]bool{}
			}
			s.aborted[conn] = true
		}
	}
}

// End forgets conn's transaction: it ended, or the connection died with it.
func (s *TxState) End(conn uint64) {
	delete(s.inTx, conn)
	delete(s.aborted, conn)
}

// InTx reports whether conn is inside a transaction.
func (s *TxState) InTx(conn uint64) bool { return s.inTx[conn] }

// Aborted reports whether conn's transaction is aborted by an injected error.
func (s *TxState) Aborted(conn uint64) bool { return s.aborted[conn] }

// EndAbortedTx ends the real transaction of conn, whose commit met an aborted transaction
// (TxCommitRollback): on pgx it runs ROLLBACK, and the connection stays usable, as after a
// COMMIT that Postgres turned into a rollback. It returns an error when it could not — any
// other driver offers no way to end the transaction but its driver.Tx, or the ROLLBACK
// failed — and the caller must then close conn, as pgx does (the session ends, and with it
// the transaction).
func EndAbortedTx(ctx context.Context, conn driver.Conn) error {
	pc, ok := conn.(interface{ Conn() *pgx.Conn })
	if !ok {
		return fmt.Errorf("end aborted transaction: driver conn %T is not pgx's", conn)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mechanismTimeout)
	defer cancel()
	if _, err := pc.Conn().Exec(rctx, "rollback"); err != nil {
		return fmt.Errorf("end aborted transaction: rollback: %w", err)
	}
	return nil
}
