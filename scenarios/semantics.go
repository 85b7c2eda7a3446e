package scenarios

import (
	"regexp"
	"strings"

	"github.com/sessionsafe/sessionsafe/faults"
)

// The outcome model: what correct code does with each fault at each step, as
// database/sql, the drivers and Postgres behave. Every rule the runner
// applies to judge a case is here, each with the behaviour it follows.
//
//  1. database/sql retries a call that returned driver.ErrBadConn on another
//     connection (sql.go: DB.retry, up to two cached or new connections,
//     then a new one) for the calls made through *sql.DB or a *sql.Stmt:
//     connect, session reset, ping, begin, prepare, and an exec or query
//     outside a transaction. A *sql.Tx and a *sql.Conn never retry. Drivers
//     answer driver.ErrBadConn for a conn they find dead before sending
//     anything, so a cut or a terminated backend counts too. A badconn,
//     cut or terminate at an exec, query or prepare outside a transaction may
//     therefore surface (through a *sql.Conn) or be retried (through the
//     pool): either is correct, and success is believed only when the trace
//     shows the statement run again after the fault (retriedAfter).
//  2. A statement outside an explicit transaction that may write (not a
//     plain SELECT, SHOW, VALUES or TABLE) is committed by the server as soon
//     as it has run. Once its request reached the server — any fault at a
//     later step, a fault at its own rows, or a cut-after at its own step —
//     the write is there whatever the caller is told: the after-state with
//     an error is the truth, not a finding (place.wrote).
//  3. A server error that a statement cannot raise after it ran is not
//     injected there: no SQLSTATE but the connection-ending ones (57P01,
//     53300, 08xxx) at the rows of an autocommit write, whose server side
//     has committed already (faultPossible).
//  4. A failed rollback need not reach the caller. The rollback runs because
//     the unit already failed (its error is what the caller must hear) or
//     because the code rolls back what it only read; the server ends the
//     transaction with the session the failure closed. The common deferred
//     `defer tx.Rollback()` drops its error on purpose. The pool, server and
//     state checks still hold the code to a rollback that really ended the
//     transaction (rollbackMayBeSilent).
//  5. A fault either leaves the connection as a correct caller leaves it —
//     back in the pool, idle, usable — or may break it (killed, closed by
//     the driver, cancelled mid-call, cut). After a case whose fault may have
//     broken a connection the runner opens a fresh pool, so that no case
//     depends on what an earlier case left behind and every replay command
//     reproduces its verdict alone (keepsConnHealthy).
//  6. Every call the code makes runs on the caller's context. database/sql
//     hands the driver the context of the call the code made at begin,
//     prepare, exec, query, ping and session reset, the begin's context at
//     commit and rollback, and the query's at rows next and close; it
//     hands its own at connect (a connection its opener goroutine opens),
//     statement close and connection close. A cancel fault at a step of the
//     first kind that finds a context not derived from the caller's
//     (context.Background(), a context of the code's own) is a finding: the
//     caller's cancellation, deadline and values never reach that call, and
//     the error it returns is the injector's, not a real cancellation
//     (carriesCallerContext).
//  7. A failed statement close need not reach the caller. database/sql
//     closes a statement prepared on the pool (db.Prepare) when its
//     connection is next idle and drops the driver's error (sql.go:
//     noteUnusedDriverStatement), and `defer stmt.Close()` drops it too;
//     the failed close frees nothing less (the driver's statement is
//     closed all the same). The session-state check still holds the code to
//     a statement it really closed (stmtCloseMayBeSilent).

// place is where a step of a clean trace sits.
type place struct {
	inTx bool // the step's connection is inside a transaction
	// wrote: an autocommit statement that may write reached the server
	// before this step (or this step is one of its rows): its write is
	// committed.
	wrote bool
	// write: the step is itself an autocommit statement that may write.
	write bool
}

// placeOf returns where step number step of trace sits.
func placeOf(trace faults.Trace, step int) place {
	var p place
	inTx := map[uint64]bool{}
	openWrite := map[uint64]bool{} // conn -> its open rows belong to an autocommit write
	for _, s := range trace {
		if s.Index == step {
			p.inTx = inTx[s.Conn]
			switch s.Kind {
			case faults.StepExec, faults.StepQuery:
				p.write = !p.inTx && mayWrite(s.SQL)
			case faults.StepNext, faults.StepRowsClose:
				p.wrote = p.wrote || openWrite[s.Conn]
			}
			return p
		}
		switch s.Kind {
		case faults.StepBegin:
			inTx[s.Conn] = s.Err == nil
		case faults.StepCommit, faults.StepRollback, faults.StepClose:
			inTx[s.Conn] = false
		case faults.StepExec, faults.StepQuery:
			if !inTx[s.Conn] && mayWrite(s.SQL) && s.Err == nil {
				p.wrote = true
				if s.Kind == faults.StepQuery {
					openWrite[s.Conn] = true
				}
			}
		case faults.StepRowsClose:
			delete(openWrite, s.Conn)
		}
	}
	return p
}

var readOnlySQL = regexp.MustCompile(`(?is)^\s*(?:select|show|values|table|explain)\b`)
var withWrites = regexp.MustCompile(`(?is)^\s*with\b.*\b(?:insert|update|delete|merge)\b`)

// mayWrite reports whether sql may change the database: anything but a plain
// read (a SELECT ... FOR UPDATE locks but writes nothing; a WITH counts when
// it holds a data-modifying statement).
func mayWrite(sql string) bool {
	if strings.TrimSpace(sql) == "" {
		return false
	}
	if withWrites.MatchString(sql) {
		return true
	}
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(sql)), "with") {
		return false
	}
	return !readOnlySQL.MatchString(sql)
}

// faultPossible reports whether production can show fault f at a step of
// kind k at place p (rule 3).
func faultPossible(f faults.Fault, k faults.StepKind, p place) bool {
	if f.Kind == faults.KindPgErr && p.wrote && !p.inTx && (k == faults.StepNext || k == faults.StepRowsClose) {
		return connEnding(f.Code)
	}
	return true
}

// connEnding reports whether a SQLSTATE ends the session (the server's
// administrator command, too many connections, a connection failure).
func connEnding(code string) bool {
	return code == faults.CodeAdminShutdown || code == faults.CodeTooManyConnections || strings.HasPrefix(code, "08")
}

// afterStateMayFail reports whether the after-state may come with an error
// for fault f at a step at place p (rule 2).
func afterStateMayFail(f faults.Fault, p place) bool {
	if p.inTx {
		return false
	}
	return p.wrote || (p.write && f.Kind == faults.KindCutAfter)
}

// retriedByDatabaseSQL reports whether database/sql may retry fault f at a
// step of kind k at place p on another connection (rule 1), for the steps
// other than connect, reset, begin and ping (which it always retries).
func retriedByDatabaseSQL(f faults.Fault, k faults.StepKind, p place) bool {
	switch {
	case p.inTx:
		return false
	case f.Kind == faults.KindBadConn:
	case f.Kind == faults.KindCut || f.Kind == faults.KindTerminate:
		// the driver finds the conn dead before it sent anything and says
		// so with driver.ErrBadConn (pgx: pgconn.SafeToRetry; lib/pq: a
		// write that sent nothing), or finds out later and returns its error
	default:
		return false
	}
	return k == faults.StepExec || k == faults.StepQuery || k == faults.StepPrepare
}

// retriedAfter reports whether trace runs the faulted step's statement again
// after the fault (database/sql's retry on another connection).
func retriedAfter(trace faults.Trace, fired faults.Step) bool {
	for _, s := range trace {
		if s.Index > fired.Index && s.Kind == fired.Kind && s.SQL == fired.SQL && s.Fault == nil {
			return true
		}
	}
	return false
}

// carriesCallerContext reports whether database/sql gives the driver, at a
// step of kind k, the context of a call the code made (rule 6).
func carriesCallerContext(k faults.StepKind) bool {
	switch k {
	case faults.StepBegin, faults.StepPrepare, faults.StepExec, faults.StepQuery, faults.StepNext,
		faults.StepRowsClose, faults.StepCommit, faults.StepRollback, faults.StepPing, faults.StepReset:
		return true
	}
	return false
}

// stmtCloseMayBeSilent reports whether a fault at a step of kind k may end
// in success for the caller because database/sql drops the error (rule 7).
func stmtCloseMayBeSilent(k faults.StepKind) bool { return k == faults.StepStmtClose }

// rollbackMayBeSilent reports whether a fault at a step of kind k may end
// in success for the caller (rule 4).
func rollbackMayBeSilent(k faults.StepKind) bool { return k == faults.StepRollback }

// keepsConnHealthy reports whether a correct caller's connection is back in
// the pool, usable, after fault f fired at a step of kind k (rule 5): an
// error the server would send on a live session, or a delay, at a statement;
// and the server faults that end in such an error — a lock or a
// statement_timeout at an exec or query (55P03 or 57014 from a session that
// stays up; the fault's SET ends with the transaction, or is reset when the
// step returns, and its lock is released). Everything else — a commit or
// rollback that failed (the injector closes the conn, as pgx does), badconn,
// a session-ending SQLSTATE, a cancel (pgx ends a transaction whose context
// is cancelled by closing the conn; lib/pq closes a conn whose context ended
// mid-call), the wire kinds, terminate, cancel-blocked (a cancel mid-call), a
// panic — may leave a conn the next case would trip over.
// TestKeepsConnHealthyOnPostgres holds every harmless case to it: the same
// session serves the case and the next one.
func keepsConnHealthy(f faults.Fault, k faults.StepKind) bool {
	switch f.Kind {
	case faults.KindLatency:
		return true
	case faults.KindLock, faults.KindStmtTimeout:
		return k == faults.StepExec || k == faults.StepQuery
	case faults.KindError:
	case faults.KindPgErr:
		if connEnding(f.Code) {
			return false
		}
	default:
		return false
	}
	return k != faults.StepCommit && k != faults.StepRollback && k != faults.StepConnect
}
