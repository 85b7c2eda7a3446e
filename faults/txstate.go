package faults

// txState is the aborted-transaction bookkeeping of an injector, keyed by connection id:
// whether a connection is inside a transaction, and whether an error injected inside it
// aborted it, as any error does on Postgres. The zero value is
// ready to use; it is not safe for concurrent use (an injector calls it under its own lock).
type txState struct {
	inTx    map[uint64]bool
	aborted map[uint64]bool // conn id -> its transaction is aborted by an injected error (25P02 until it ends)
}

// txVerdict is what txState.Before decides for a step.
type txVerdict int

const (
	// txProceed lets the step go on.
	txProceed txVerdict = iota
	// txFailStatement answers the step with PgError(CodeInFailedTransaction) (25P02)
	// without reaching the driver: a statement of an aborted transaction.
	txFailStatement
	// txCommitRollback answers the commit of an aborted transaction with
	// pgx.ErrTxCommitRollback; the caller has the driver roll the real transaction back.
	txCommitRollback
)

// Before decides step kind k on connection conn: txFailStatement for an exec, query or
// prepare of an aborted transaction, txCommitRollback for its commit (the transaction is
// then over), txProceed otherwise (a rollback, begin or close ends the aborted state).
func (s *txState) Before(conn uint64, k StepKind) txVerdict {
	if !s.aborted[conn] {
		return txProceed
	}
	switch k {
	case StepExec, StepQuery, StepPrepare:
		// Postgres answers every statement of an aborted transaction
		// with 25P02 until it ends.
		return txFailStatement
	case StepCommit:
		// Postgres answers the COMMIT of an aborted transaction with
		// ROLLBACK, which pgx reports as ErrtxCommitRollback.
		s.End(conn)
		return txCommitRollback
	case StepRollback, StepBegin, StepClose:
		delete(s.aborted, conn)
	}
	return txProceed
}

// After records the driver's answer err to step kind k on conn: a begin that succeeded
// starts a transaction; a commit, rollback or close ends it.
func (s *txState) After(conn uint64, k StepKind, err error) {
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
func (s *txState) Injected(conn uint64, k StepKind) {
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
func (s *txState) End(conn uint64) {
	delete(s.inTx, conn)
	delete(s.aborted, conn)
}

// InTx reports whether conn is inside a transaction.
func (s *txState) InTx(conn uint64) bool { return s.inTx[conn] }

// Aborted reports whether conn's transaction is aborted by an injected error.
func (s *txState) Aborted(conn uint64) bool { return s.aborted[conn] }
