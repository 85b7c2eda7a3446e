package chaos

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// pgCodes are the SQLSTATEs a pgerr fault carries: the faults package's, in a fixed order
// (the order is part of what a seed draws).
var pgCodes = []string{
	faults.CodeSerializationFailure, faults.CodeDeadlockDetected, faults.CodeUniqueViolation,
	faults.CodeQueryCanceled, faults.CodeAdminShutdown, faults.CodeTooManyConnections,
	faults.CodeConnectionFailure,
}

// lostCommit is a commit that never reached the server: the connection is discarded (so the
// server rolls the transaction back) and the caller sees err.
type lostCommit struct{ err error }

func (e *lostCommit) Error() string   { return e.err.Error() }
func (e *lostCommit) Unwrap() []error { return []error{e.err, driver.ErrBadConn} }

// step is one driver call of an operation, for the trace of a violation.
type step struct {
	op    drvwrap.Op
	sql   string
	fault string
	err   string
}

// injector decides, for one worker, whether each driver step fails. It is armed per
// operation with that operation's generator; between operations it injects nothing.
type injector struct {
	rate float64

	mu     sync.Mutex
	rng    *rand.Rand // nil: disarmed
	cancel context.CancelFunc
	steps  []step
	fired  []string
	ambig  bool // a commit was cut after the server committed
	// cutAfter marks the connections whose commit, once the server answered, must
	// look broken to the client (an ambiguous commit).
	cutAfter map[uint64]bool
	// tx is the aborted-transaction bookkeeping, shared with package faults: an error
	// injected inside a transaction aborts it (25P02 after it, a rolled-back commit).
	tx      faults.TxState
	faults  int64
	onFault func()
}

const maxTraceSteps = 64

// arm starts an operation: faults are drawn from rng (nil: none) and cancel is what a
// "cancel" fault calls.
func (in *injector) arm(rng *rand.Rand, cancel context.CancelFunc) {
	in.mu.Lock()
	in.rng, in.cancel = rng, cancel
	in.steps, in.fired, in.ambig = in.steps[:0], in.fired[:0], false
	in.mu.Unlock()
}

// disarm ends the operation and returns what fired and whether a commit was ambiguous.
func (in *injector) disarm() (fired []string, ambiguous bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rng, in.cancel = nil, nil
	return append([]string(nil), in.fired...), in.ambig
}

// peekAmbiguous returns what fired so far in the operation and whether a commit was ambiguous.
func (in *injector) peekAmbiguous() (fired []string, ambiguous bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.fired, in.ambig
}

// trace returns the steps of the last operation, one a line.
func (in *injector) trace() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var b strings.Builder
	for i, s := range in.steps {
		fmt.Fprintf(&b, "%3d %-11s", i+1, s.op)
		if s.sql != "" {
			q := strings.Join(strings.Fields(s.sql), " ")
			if len(q) > 90 {
				q = q[:90] + "…"
			}
			fmt.Fprintf(&b, " %s", q)
		}
		if s.fault != "" {
			fmt.Fprintf(&b, "  <- %s", s.fault)
		}
		if s.err != "" {
			fmt.Fprintf(&b, "  (error: %s)", s.err)
		}
		b.WriteByte('\n')
	}
	if len(in.steps) == maxTraceSteps {
		b.WriteString("... (trace truncated)\n")
	}
	return b.String()
}

// eligible reports whether a fault may be injected at op: the steps whose failure the code
// under test must handle. Rollback, close, reset and validity checks are left alone: a
// rollback that never reaches the driver would leave the injector's own transaction open.
func eligible(op drvwrap.Op) bool {
	switch op {
	case drvwrap.OpConnect, drvwrap.OpBegin, drvwrap.OpPrepare, drvwrap.OpExec, drvwrap.OpQuery,
		drvwrap.OpStmtExec, drvwrap.OpStmtQuery, drvwrap.OpRowsNext, drvwrap.OpCommit:
		return true
	}
	return false
}

func (in *injector) record(c *drvwrap.Call, fault string) {
	if len(in.steps) < maxTraceSteps {
		in.steps = append(in.steps, step{op: c.Op, sql: c.SQL, fault: fault})
	} else if in.cancel == nil {
		// Armed for good (serve): keep the latest steps only.
		copy(in.steps, in.steps[1:])
		in.steps[len(in.steps)-1] = step{op: c.Op, sql: c.SQL, fault: fault}
	}
	if fault != "" {
		if len(in.fired) >= maxTraceSteps {
			in.fired = append(in.fired[:0], in.fired[1:]...)
		}
		in.fired = append(in.fired, fault+" at "+c.Op.String())
		in.faults++
		if in.onFault != nil {
			in.onFault()
		}
	}
}

// txKind is the faults step kind of op, for the aborted-transaction bookkeeping; an op the
// bookkeeping does not tell apart maps to StepPing, which it ignores.
func txKind(op drvwrap.Op) faults.StepKind {
	switch op {
	case drvwrap.OpBegin:
		return faults.StepBegin
	case drvwrap.OpPrepare:
		return faults.StepPrepare
	case drvwrap.OpExec, drvwrap.OpStmtExec:
		return faults.StepExec
	case drvwrap.OpQuery, drvwrap.OpStmtQuery:
		return faults.StepQuery
	case drvwrap.OpRowsNext:
		return faults.StepNext
	case drvwrap.OpCommit:
		return faults.StepCommit
	case drvwrap.OpRollback:
		return faults.StepRollback
	case drvwrap.OpClose:
		return faults.StepClose
	}
	return faults.StepPing
}

// aborted answers a step of a transaction that an injected error aborted, as package
// faults does: a statement fails with 25P02 without reaching the driver; the commit ends
// the real transaction (ROLLBACK, or the conn is closed) and returns
// pgx.ErrTxCommitRollback. It returns handled false for any other step. Called with in.mu
// held; it unlocks it when handled.
func (in *injector) aborted(ctx context.Context, c *drvwrap.Call) (handled bool, err error) {
	switch in.tx.Before(c.ConnID, txKind(c.Op)) {
	case faults.TxFailStatement:
		err = faults.PgError(faults.CodeInFailedTransaction)
	case faults.TxCommitRollback:
		err = pgx.ErrTxCommitRollback
	default:
		return false, nil
	}
	if in.rng != nil {
		in.record(c, "")
		if n := len(in.steps); n > 0 {
			in.steps[n-1].err = err.Error()
		}
	}
	in.mu.Unlock()
	if errors.Is(err, pgx.ErrTxCommitRollback) && faults.EndAbortedTx(ctx, c.Conn) != nil && c.Conn != nil {
		_ = c.Conn.Close() // as pgx does after a failed ROLLBACK: the session ends with it
	}
	return true, err
}

// breaksConn reports whether f leaves the connection dead, as package faults plays it: a
// badconn, or a pgerr whose code Postgres sends as FATAL (57P01, 53300, 08006).
func breaksConn(f faults.Fault) bool {
	return f.Kind == faults.KindBadConn || f.Kind == faults.KindPgErr && faults.PgError(f.Code).Severity == "FATAL"
}

// hooks returns the drvwrap hooks of the injector.
func (in *injector) hooks() drvwrap.Hooks {
	return drvwrap.Hooks{
		Before: func(ctx context.Context, c *drvwrap.Call) error {
			in.mu.Lock()
			if handled, err := in.aborted(ctx, c); handled {
				return err
			}
			if in.rng == nil || !eligible(c.Op) || in.rng.Float64() >= in.rate {
				if in.rng != nil {
					in.record(c, "")
				}
				in.mu.Unlock()
				return nil
			}
			kind := in.rng.IntN(10)
			code := pgCodes[in.rng.IntN(len(pgCodes))]
			delay := time.Duration(1+in.rng.IntN(5)) * time.Millisecond
			var f faults.Fault
			var err error
			switch {
			case c.Op == drvwrap.OpCommit && kind < 4:
				// Cut after the commit was sent: the server commits, the client sees a
				// broken connection. Decided here, acted on in After.
				f = faults.Fault{Kind: faults.KindAmbiguous}
				in.ambig = true
				if in.cutAfter == nil {
					in.cutAfter = map[uint64]bool{}
				}
				in.cutAfter[c.ConnID] = true
			case c.Op == drvwrap.OpCommit:
				f = faults.Fault{Kind: faults.KindPgErr, Code: code}
				err = &lostCommit{faults.PgError(code)}
			case kind == 0:
				f = faults.Fault{Kind: faults.KindError}
				err = fmt.Errorf("%s: %w", c.Op, faults.ErrInjected)
			case kind <= 3:
				f = faults.Fault{Kind: faults.KindPgErr, Code: code}
				err = faults.PgError(code)
			case kind == 4:
				f = faults.Fault{Kind: faults.KindBadConn}
				err = driver.ErrBadConn
			case kind == 5 && in.cancel != nil:
				f = faults.Fault{Kind: faults.KindCancel}
				in.cancel()
				err = context.Canceled
			default:
				f = faults.Fault{Kind: faults.KindLatency, Delay: delay}
			}
			fault := f.String()
			in.record(c, fault)
			if breaksConn(f) {
				in.tx.End(c.ConnID) // the session, and its transaction, end with the conn
			} else if err != nil {
				in.tx.Injected(c.ConnID, txKind(c.Op))
			}
			in.mu.Unlock()
			if breaksConn(f) && c.Conn != nil && c.Op != drvwrap.OpCommit {
				// As in a faults plan: the conn is dead from here on (the server ends
				// the session and its transaction); database/sql learns it at its next
				// call and discards it. (A commit fault breaks it through lostCommit.)
				_ = c.Conn.Close()
			}
			if f.Kind == faults.KindLatency {
				t := time.NewTimer(delay)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					in.mu.Lock()
					in.tx.Injected(c.ConnID, txKind(c.Op))
					in.mu.Unlock()
					return ctx.Err()
				}
			}
			return err
		},
		After: func(ctx context.Context, c *drvwrap.Call, err error) error {
			switch c.Op {
			case drvwrap.OpBegin, drvwrap.OpRollback, drvwrap.OpClose:
				in.mu.Lock()
				in.tx.After(c.ConnID, txKind(c.Op), err)
				in.mu.Unlock()
			}
			if c.Op != drvwrap.OpCommit {
				return err
			}
			in.mu.Lock()
			defer in.mu.Unlock()
			in.tx.After(c.ConnID, faults.StepCommit, err)
			if in.cutAfter[c.ConnID] {
				delete(in.cutAfter, c.ConnID)
				if err == nil {
					return driver.ErrBadConn
				}
			}
			return err
		},
	}
}
