package faults

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors of the package.
var (
	// ErrInjected is wrapped by the error of an "error" fault.
	ErrInjected = errors.New("faults: injected error")
	// ErrPlanSyntax is wrapped by every ParsePlan error.
	ErrPlanSyntax = errors.New("faults: plan syntax")
	// ErrInvalidFault is wrapped when a Fault or Rule is not well formed.
	ErrInvalidFault = errors.New("faults: invalid fault")
	// ErrUnknownStepKind is wrapped when a step kind name is unknown.
	ErrUnknownStepKind = errors.New("faults: unknown step kind")
	// ErrNeedsMechanism is returned (wrapped) at a step whose fault needs a
	// Wire or a Server the Injector was not given (see WithWire, WithServer).
	ErrNeedsMechanism = errors.New("faults: fault needs a wire or server mechanism")
	// ErrForeignContext is wrapped by the error of a cancel fault at a step
	// whose context does not come from Injector.Context: the call ran on a
	// context of its own (context.Background(), say) rather than the
	// caller's, so nothing was cancelled.
	ErrForeignContext = errors.New("faults: the step's context does not come from Injector.Context")
)

// Kind is a kind of fault.
type Kind int

// The fault kinds. See the package documentation for what each does.
const (
	KindError         Kind = iota + 1 // a plain error (ErrInjected)
	KindPgErr                         // a *pgconn.PgError with Fault.Code
	KindBadConn                       // driver.ErrBadConn, conn broken
	KindCancel                        // cancel the caller's context
	KindLatency                       // wait Fault.Delay, honouring the context
	KindPanic                         // panic with *InjectedPanic
	KindCut                           // wire: cut before the step's message reaches the server
	KindCutAfter                      // wire: cut after the step's message was sent
	KindAmbiguous                     // wire: cut after COMMIT was sent (commit only)
	KindTerminate                     // server: terminate the session's backend
	KindLock                          // server: a conflicting lock blocks the step until it is cancelled
	KindStmtTimeout                   // server: the statement is cancelled as by statement_timeout (57014)
	KindCancelBlocked                 // server: the step waits on a lock, then the caller's context is cancelled
)

var kindNames = [...]string{
	KindError:         "error",
	KindPgErr:         "pgerr",
	KindBadConn:       "badconn",
	KindCancel:        "cancel",
	KindLatency:       "latency",
	KindPanic:         "panic",
	KindCut:           "cut",
	KindCutAfter:      "cut-after",
	KindAmbiguous:     "ambiguous",
	KindTerminate:     "terminate",
	KindLock:          "lock",
	KindStmtTimeout:   "stmt-timeout",
	KindCancelBlocked: "cancel-blocked",
}

// Kinds returns every fault kind, in order.
func Kinds() []Kind {
	ks := make([]Kind, 0, len(kindNames)-1)
	for k := KindError; k <= KindCancelBlocked; k++ {
		ks = append(ks, k)
	}
	return ks
}

// String returns the kind's name as plans write it.
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	for k := KindError; k <= KindCancelBlocked; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("parse fault kind %q: %w", s, ErrInvalidFault)
}

// NeedsWire reports whether the kind is carried out by a Wire.
func (k Kind) NeedsWire() bool { return k == KindCut || k == KindCutAfter || k == KindAmbiguous }

// NeedsServer reports whether the kind is carried out by a Server.
func (k Kind) NeedsServer() bool {
	return k == KindTerminate || k == KindLock || k == KindStmtTimeout || k == KindCancelBlocked
}

// Fault is one fault: its kind and, for pgerr, the SQLSTATE code, for
// latency, the delay.
type Fault struct {
	Kind  Kind
	Code  string        // pgerr: five characters, digits and upper-case letters
	Delay time.Duration // latency: positive
}

// String returns the fault as plans write it: "pgerr=40001", "latency=50ms",
// "badconn".
func (f Fault) String() string {
	switch f.Kind {
	case KindPgErr:
		return "pgerr=" + f.Code
	case KindLatency:
		return "latency=" + f.Delay.String()
	}
	return f.Kind.String()
}

// Validate reports whether the fault is well formed.
func (f Fault) Validate() error {
	if f.Kind < KindError || f.Kind > KindCancelBlocked {
		return fmt.Errorf("validate fault: unknown kind %d: %w", int(f.Kind), ErrInvalidFault)
	}
	if f.Kind == KindPgErr {
		if !validSQLState(f.Code) {
			return fmt.Errorf("validate fault %s: SQLSTATE must be five digits or upper-case letters: %w", f, ErrInvalidFault)
		}
	} else if f.Code != "" {
		return fmt.Errorf("validate fault %s: only pgerr takes a code: %w", f.Kind, ErrInvalidFault)
	}
	if f.Kind == KindLatency {
		if f.Delay <= 0 {
			return fmt.Errorf("validate fault %s: latency needs a positive delay: %w", f, ErrInvalidFault)
		}
	} else if f.Delay != 0 {
		return fmt.Errorf("validate fault %s: only latency takes a delay: %w", f.Kind, ErrInvalidFault)
	}
	return nil
}

func validSQLState(code string) bool {
	if len(code) != 5 {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !isDigit(c) && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// The SQLSTATE codes the package knows the production text of.
const (
	CodeSerializationFailure = "40001" // could not serialize access
	CodeDeadlockDetected     = "40P01" // deadlock detected
	CodeUniqueViolation      = "23505" // duplicate key value
	CodeQueryCanceled        = "57014" // statement cancelled (statement_timeout, pg_cancel_backend)
	CodeAdminShutdown        = "57P01" // backend terminated by an administrator
	CodeTooManyConnections   = "53300" // too many clients
	CodeConnectionFailure    = "08006" // connection failure
	CodeInFailedTransaction  = "25P02" // current transaction is aborted (a statement after an error in the transaction)
)

type pgText struct {
	severity, message, detail, constraint string
}

var pgTexts = map[string]pgText{
	CodeSerializationFailure: {"ERROR", "could not serialize access due to concurrent update", "", ""},
	CodeDeadlockDetected:     {"ERROR", "deadlock detected", "Process 4242 waits for ShareLock on transaction 1001; blocked by process 4243.", ""},
	CodeUniqueViolation:      {"ERROR", `duplicate key value violates unique constraint "faults_injected_key"`, "Key (id)=(1) already exists.", "faults_injected_key"},
	CodeQueryCanceled:        {"ERROR", "canceling statement due to statement timeout", "", ""},
	CodeAdminShutdown:        {"FATAL", "terminating connection due to administrator command", "", ""},
	CodeTooManyConnections:   {"FATAL", "sorry, too many clients already", "", ""},
	CodeConnectionFailure:    {"FATAL", "connection failure", "", ""},
	CodeInFailedTransaction:  {"ERROR", "current transaction is aborted, commands ignored until end of transaction block", "", ""},
}

// PgError returns the error Postgres sends for code: a *pgconn.PgError with
// the severity, message and detail of the real one for the codes the package
// knows (the Code* constants), and a generic ERROR for others. The message
// ends with "(injected)" so that logs show where it came from.
func PgError(code string) *pgconn.PgError {
	t, ok := pgTexts[code]
	if !ok {
		t = pgText{severity: "ERROR", message: "injected error with SQLSTATE " + code}
	}
	return &pgconn.PgError{
		Severity:            t.severity,
		SeverityUnlocalized: t.severity,
		Code:                code,
		Message:             t.message + " (injected)",
		Detail:              t.detail,
		ConstraintName:      t.constraint,
	}
}

// fatalCode reports whether Postgres closes the session after code.
func fatalCode(code string) bool {
	return code == CodeAdminShutdown || code == CodeTooManyConnections || code == CodeConnectionFailure ||
		strings.HasPrefix(code, "08")
}

// InjectedPanic is the value a panic fault panics with.
type InjectedPanic struct {
	Step int      // the step's index
	Kind StepKind // the step's kind
}

// Error describes the panic; InjectedPanic is an error so that code that
// recovers and wraps the value keeps it visible to errors.As.
func (p *InjectedPanic) Error() string {
	return fmt.Sprintf("faults: injected panic at step %d (%s)", p.Step, p.Kind)
}
