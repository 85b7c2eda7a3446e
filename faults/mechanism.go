package faults

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// WithWire lets the injector carry out the wire kinds (cut, cut-after,
// ambiguous) through w, which must be installed on the pgconn.Config of the
// connector the injector wraps (Wire.Install). The injector arms w's rules
// at the step and disarms w when the step returns: it owns w's rules.
// Messages are counted over all of w's connections, so aim wire faults at
// steps that no other connection runs at the same moment (a pool of one
// connection, or a sequential run).
func WithWire(w *Wire) InjectorOption {
	return func(c *injectorConfig) { c.wire = w }
}

// WithServer lets the injector carry out the server kinds (terminate, lock,
// stmt-timeout) through s on the sessions whose application_name is appName
// (the pool under test's). For lock and stmt-timeout, s must take its locks
// on the database under test (WithLockDB). They work for exec and query
// steps whose SQL names a table (after FROM, JOIN, UPDATE, INTO): the
// table is locked from another session, the session under test gets a
// lock_timeout of LockFaultTimeout (lock: 55P03) or a statement_timeout of
// ServerFaultTimeout (stmt-timeout: 57014) for that step, and the step fails as it would in
// production. The lock cannot be taken while the transaction under test
// already holds a conflicting lock on that table (it touched the table
// before); the step then fails with an error wrapping ErrNeedsMechanism.
func WithServer(s *Server, appName string) InjectorOption {
	return func(c *injectorConfig) { c.server, c.appName = s, appName }
}

// ServerFaultTimeout is the statement_timeout the stmt-timeout fault gives
// the step. It is long enough that the statements that follow the step on
// its session — the RESET that puts the setting back, or the ROLLBACK of the
// transaction — cannot reach it on a loaded machine: they run under it too.
const ServerFaultTimeout = 100 * time.Millisecond

// LockFaultTimeout is the lock_timeout the lock fault gives the step. Only a
// wait for a lock can reach it, and nothing that follows the step on its
// session waits for one (the fault's lock is released first), so it can be
// short: the lock cases run alone, and this is most of their time.
const LockFaultTimeout = 20 * time.Millisecond

// mechanismTimeout bounds the server round trips of a wire or server fault.
const mechanismTimeout = 10 * time.Second

// pending is the cleanup a wire or server fault left for the end of its step.
type pending func(c *drvwrap.Call)

var tableRE = regexp.MustCompile(`(?i)\b(?:from|join|update|into)\s+((?:"[^"]+"|[a-z_][a-z0-9_$]*)(?:\.(?:"[^"]+"|[a-z_][a-z0-9_$]*))?)`)

// targetTable returns the first table an SQL text names, or "".
func targetTable(sql string) string {
	m := tableRE.FindStringSubmatch(sql)
	if m == nil {
		return ""
	}
	return m[1]
}

// applyMechanism carries out the wire and server kinds. It returns nil when
// the step is to go on to the driver, which then meets the fault.
func (i *Injector) applyMechanism(ctx context.Context, c *drvwrap.Call, st *Step, f Fault) error {
	switch {
	case f.Kind.NeedsWire():
		if i.cfg.wire == nil {
			return fmt.Errorf("inject %s at step %d: no Wire (use WithWire): %w", f, st.Index, ErrNeedsMechanism)
		}
		return i.armWire(c, st, f)
	case f.Kind.NeedsServer():
		if i.cfg.server == nil || i.cfg.appName == "" {
			return fmt.Errorf("inject %s at step %d: no Server (use WithServer): %w", f, st.Index, ErrNeedsMechanism)
		}
		if f.Kind == KindCancelBlocked {
			return i.cancelBlocked(ctx, c, st, f)
		}
		if f.Kind == KindTerminate {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mechanismTimeout)
			defer cancel()
			if _, err := i.cfg.server.TerminateBackends(tctx, i.cfg.appName); err != nil {
				return fmt.Errorf("inject %s at step %d: %w", f, st.Index, err)
			}
			return nil
		}
		return i.lockStep(ctx, c, st, f)
	}
	return fmt.Errorf("inject %s at step %d: unknown kind: %w", f, st.Index, ErrInvalidFault)
}

func (i *Injector) armWire(c *drvwrap.Call, st *Step, f Fault) error {
	action := WireCutBefore
	if f.Kind == KindCutAfter || f.Kind == KindAmbiguous {
		action = WireCutAfter
	}
	var messages []string
	switch st.Kind {
	case StepCommit:
		messages = []string{WireCommit}
	case StepBegin, StepRollback:
		messages = []string{WireQuery}
	case StepPrepare:
		messages = []string{WireParse}
	case StepExec, StepQuery:
		// Before: the simple protocol (no arguments) sends Query; the
		// extended protocol binds the statement at Bind (a prepare round trip
		// of Parse, Describe, Sync may come first). After: the message that
		// completes the statement's request (a Query, or the Sync after its
		// Execute), so the server runs it — and commits it outside a
		// transaction — while the client loses the answer.
		if action == WireCutBefore {
			messages = []string{WireQuery, WireBind}
		} else {
			messages = []string{WireRequest}
		}
	default:
		return fmt.Errorf("inject %s at step %d: the wire cannot target a %s step: %w", f, st.Index, st.Kind, ErrNeedsMechanism)
	}
	if f.Kind == KindAmbiguous && st.Kind != StepCommit {
		return fmt.Errorf("inject %s at step %d: ambiguous applies to commit steps only: %w", f, st.Index, ErrInvalidFault)
	}
	w := i.cfg.wire
	w.Disarm()
	for _, m := range messages {
		if err := w.Arm(WireRule{Message: m, N: 1, Action: action}); err != nil {
			w.Disarm()
			return fmt.Errorf("inject %s at step %d: %w", f, st.Index, err)
		}
	}
	i.setPending(c, func(*drvwrap.Call) { w.Disarm() })
	return nil
}

func (i *Injector) lockStep(ctx context.Context, c *drvwrap.Call, st *Step, f Fault) error {
	if st.Kind != StepExec && st.Kind != StepQuery {
		return fmt.Errorf("inject %s at step %d: only exec and query steps can be blocked by a lock: %w", f, st.Index, ErrNeedsMechanism)
	}
	table := targetTable(st.SQL)
	if table == "" {
		return fmt.Errorf("inject %s at step %d: no table named in %q: %w", f, st.Index, shorten(st.SQL, 80), ErrNeedsMechanism)
	}
	ex, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return fmt.Errorf("inject %s at step %d: the driver conn cannot exec a SET: %w", f, st.Index, ErrNeedsMechanism)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mechanismTimeout)
	defer cancel()
	release, err := i.cfg.server.HoldLock(lctx, "SET LOCAL lock_timeout = 1000; LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE")
	if err != nil {
		return fmt.Errorf("inject %s at step %d: lock %s from another session (does the transaction under test hold a lock on it already?): %w: %w",
			f, st.Index, table, err, ErrNeedsMechanism)
	}
	setting, timeout := "lock_timeout", LockFaultTimeout
	if f.Kind == KindStmtTimeout {
		setting, timeout = "statement_timeout", ServerFaultTimeout
	}
	i.mu.Lock()
	inTx := i.tx.InTx(c.ConnID)
	i.mu.Unlock()
	set := fmt.Sprintf("SET %s = %d", setting, timeout.Milliseconds())
	if inTx {
		set = fmt.Sprintf("SET LOCAL %s = %d", setting, timeout.Milliseconds())
	}
	if _, err := ex.ExecContext(lctx, set, nil); err != nil {
		return errors.Join(fmt.Errorf("inject %s at step %d: %s: %w", f, st.Index, set, err), release())
	}
	i.setPending(c, func(c *drvwrap.Call) {
		_ = release()
		if !inTx {
			// A session-level SET outlives the step: put it back. (SET LOCAL
			// ends with the transaction.)
			rctx, cancel := context.WithTimeout(context.Background(), mechanismTimeout)
			defer cancel()
			if ex, ok := c.Conn.(driver.ExecerContext); ok {
				_, _ = ex.ExecContext(rctx, "RESET "+setting, nil)
			}
		}
	})
	return nil
}

func (i *Injector) setPending(c *drvwrap.Call, p pending) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.pending[c] = p
}

// CancelBlockedBound is how long a step blocked by a cancel-blocked fault
// has to return once the caller's context is cancelled; past it the lock is
// released, so that nothing hangs, and the firing's Unheeded says so.
const CancelBlockedBound = 2 * time.Second

// cancelBlocked carries out cancel-blocked at an exec or query step: the
// step's table is locked from another session, and once the session under
// test is seen waiting for that lock (or after mechanismTimeout), the
// caller's context (from Injector.Context) is cancelled. A step that
// returns within CancelBlockedBound heeded it; when it returns, the lock is
// released once its statement no longer waits on the server (bounded too).
func (i *Injector) cancelBlocked(ctx context.Context, c *drvwrap.Call, st *Step, f Fault) error {
	cancel, ok := ctx.Value(cancelKey{i}).(context.CancelFunc)
	if !ok {
		return fmt.Errorf("%s at step %d: nothing was cancelled: %w: %w", f, st.Index, ErrForeignContext, context.Canceled)
	}
	if st.Kind != StepExec && st.Kind != StepQuery {
		return fmt.Errorf("inject %s at step %d: only exec and query steps can be blocked by a lock: %w", f, st.Index, ErrNeedsMechanism)
	}
	table := targetTable(st.SQL)
	if table == "" {
		return fmt.Errorf("inject %s at step %d: no table named in %q: %w", f, st.Index, shorten(st.SQL, 80), ErrNeedsMechanism)
	}
	lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), mechanismTimeout)
	defer lcancel()
	release, err := i.cfg.server.HoldLock(lctx, "SET LOCAL lock_timeout = 1000; LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE")
	if err != nil {
		return fmt.Errorf("inject %s at step %d: lock %s from another session (does the transaction under test hold a lock on it already?): %w: %w",
			f, st.Index, table, err, ErrNeedsMechanism)
	}
	srv, app, idx := i.cfg.server, i.cfg.appName, st.Index
	what := fmt.Sprintf("%s at step %d (%s)", st.Kind, idx, shorten(st.SQL, 120))
	unheeded := func(err error) {
		i.mu.Lock()
		defer i.mu.Unlock()
		if i.unheeded[idx] == nil {
			i.unheeded[idx] = err
		}
	}
	wctx, wcancel := context.WithTimeout(context.Background(), mechanismTimeout)
	returned := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = srv.WaitBlocked(wctx, app) // seen waiting, or returned (wcancel), or the bound
		cancel()
		t := time.NewTimer(CancelBlockedBound)
		defer t.Stop()
		select {
		case <-returned:
			return
		case <-t.C:
		}
		unheeded(fmt.Errorf("the %s was still blocked on a lock %s after the caller's context was cancelled: the call does not honour the caller's context",
			what, CancelBlockedBound))
		_ = release()
	}()
	i.setPending(c, func(*drvwrap.Call) {
		wcancel()
		close(returned)
		<-finished
		// The call returned: its statement must not wait on the server any
		// more (a cancelled call whose statement the server still runs
		// would go on once the lock goes).
		uctx, ucancel := context.WithTimeout(context.Background(), CancelBlockedBound)
		defer ucancel()
		if err := srv.WaitUnblocked(uctx, app); err != nil {
			unheeded(fmt.Errorf("the %s returned, but its statement still waited on the server %s later: the cancellation did not reach the server", what, CancelBlockedBound))
		}
		_ = release()
	})
	return nil
}
