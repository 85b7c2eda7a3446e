package faults

import "time"

// Backend is the kind of database a run goes to; it decides which faults
// make sense.
type Backend int

// The backends.
const (
	Mock     Backend = iota + 1 // sqlmock or any driver without a server: driver-level faults only
	Postgres                    // real Postgres: also wire and server faults
)

// String returns "sqlmock" or "postgres" (the names matrix cases print).
func (b Backend) String() string {
	switch b {
	case Mock:
		return "sqlmock"
	case Postgres:
		return "postgres"
	}
	return "Backend(?)"
}

// DefaultLatency is the delay of the latency faults Applicable returns.
const DefaultLatency = 20 * time.Millisecond

func pg(code string) Fault { return Fault{Kind: KindPgErr, Code: code} }

// Applicable returns the faults that make sense at a step of kind k on
// backend: the errors production can show there, in a fixed order. Wire and
// server faults are included for Postgres only. A kind database/sql never
// gets an error from in a way the caller sees (is-valid), or that a backend
// never has (reset on sqlmock, whose conns have no session reset), gets none.
// A panic is offered at exec and next steps only: database/sql releases the
// conn when the driver panics in an exec, and a panic in rows next leaves the
// rows for the caller's deferred Close; a panic anywhere else leaks the conn
// (begin, commit, a query outside a transaction) or deadlocks the Tx's
// Rollback (a query inside one), whatever the caller does. (An exec through
// a prepared *sql.Stmt — Step.Prepared — is the exception: database/sql
// releases that conn without a defer, so a panic there leaks it.)
func Applicable(k StepKind, backend Backend) []Fault {
	basic := func(extra ...Fault) []Fault {
		fs := []Fault{{Kind: KindError}}
		fs = append(fs, extra...)
		return fs
	}
	latency := Fault{Kind: KindLatency, Delay: DefaultLatency}
	var fs, server []Fault
	switch k {
	case StepConnect:
		fs = basic(pg(CodeTooManyConnections), pg(CodeConnectionFailure), Fault{Kind: KindBadConn},
			Fault{Kind: KindCancel}, latency)
	case StepBegin:
		fs = basic(pg(CodeAdminShutdown), Fault{Kind: KindBadConn}, Fault{Kind: KindCancel}, latency)
		server = []Fault{{Kind: KindCut}, {Kind: KindTerminate}}
	case StepPrepare:
		fs = basic(pg(CodeAdminShutdown), Fault{Kind: KindBadConn}, Fault{Kind: KindCancel}, latency)
		server = []Fault{{Kind: KindCut}, {Kind: KindTerminate}}
	case StepExec, StepQuery:
		fs = basic(pg(CodeSerializationFailure), pg(CodeDeadlockDetected), pg(CodeUniqueViolation),
			pg(CodeQueryCanceled), pg(CodeAdminShutdown), pg(CodeConnectionFailure),
			Fault{Kind: KindBadConn}, Fault{Kind: KindCancel}, latency)
		if k == StepExec {
			// database/sql releases the conn on a panic in exec (and next,
			// below); elsewhere a panic leaks the conn or deadlocks the Tx.
			fs = append(fs, Fault{Kind: KindPanic})
		}
		server = []Fault{{Kind: KindCut}, {Kind: KindCutAfter}, {Kind: KindTerminate}, {Kind: KindLock}, {Kind: KindStmtTimeout}}
	case StepNext:
		fs = basic(pg(CodeQueryCanceled), pg(CodeAdminShutdown), pg(CodeConnectionFailure),
			Fault{Kind: KindCancel}, latency, Fault{Kind: KindPanic})
	case StepRowsClose, StepStmtClose:
		fs = basic(latency)
	case StepCommit:
		fs = basic(pg(CodeSerializationFailure), pg(CodeUniqueViolation), pg(CodeAdminShutdown), pg(CodeConnectionFailure),
			Fault{Kind: KindBadConn}, Fault{Kind: KindCancel}, latency)
		server = []Fault{{Kind: KindCut}, {Kind: KindAmbiguous}, {Kind: KindTerminate}}
	case StepRollback:
		fs = basic(pg(CodeAdminShutdown), pg(CodeConnectionFailure), Fault{Kind: KindBadConn}, latency)
		server = []Fault{{Kind: KindCut}, {Kind: KindTerminate}}
	case StepReset:
		if backend == Postgres {
			fs = []Fault{{Kind: KindBadConn}}
		}
	case StepPing:
		fs = basic(Fault{Kind: KindBadConn}, latency)
	case StepClose:
		fs = basic()
	}
	if backend == Postgres {
		fs = append(fs, server...)
	}
	return fs
}
