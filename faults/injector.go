package faults

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// Injector records the steps of a run through the driver it wraps and fires
// the armed plan's faults at their steps. Create one with NewInjector, wrap
// one connector (or driver) with it, and open the pool under test on the
// result. An Injector is safe for concurrent use.
//
// Connection ids (Step.Conn) are 1, 2, ... in connect order over every
// connector or driver the Injector wraps.
type Injector struct {
	cfg     injectorConfig
	connIDs atomic.Uint64 // conn ids, unique over every connector this injector wraps

	mu       sync.Mutex
	dec      Decider  // nil: nothing fires
	chunks   [][]Step // the kept steps, chunkSize a chunk (no large copies as the trace grows)
	kept     int
	steps    int      // steps since Arm; the trace keeps the first maxSteps
	fired    []Firing // the latest maxSteps firings
	nfired   int64
	dead     map[uint64]bool
	openRows map[uint64]int            // conn id -> index of the query step whose rows are open
	tx       txState                   // conn id -> in a transaction, aborted by an injected error
	pending  map[*drvwrap.Call]pending // cleanup of a wire or server fault, run when its step returns
	prints   map[string]string
	rowBuf   []driver.Value      // where copied rows live: one array for many rows (copyRow)
	rowsBuf  [][]driver.Value    // where a query step's first row goes: one array for many queries
	cols     map[string][]string // SQL -> the column names last recorded for it, shared by its steps
	unheeded map[int]error       // step index -> what a cancel-blocked step did not heed
}

type injectorConfig struct {
	maxRows  int
	maxSteps int
	wire     *Wire
	server   *Server
	appName  string
}

// InjectorOption configures an Injector.
type InjectorOption func(*injectorConfig)

// WithMaxRows bounds how many rows a query step keeps in the trace
// (default 1000); beyond it the step is marked Truncated.
func WithMaxRows(n int) InjectorOption {
	return func(c *injectorConfig) { c.maxRows = n }
}

// WithMaxSteps bounds how many steps the trace keeps (default 100000):
// later steps are counted, matched and fired at, but not kept, so a long
// run does not grow without end.
func WithMaxSteps(n int) InjectorOption {
	return func(c *injectorConfig) { c.maxSteps = n }
}

// Firing records one rule firing.
type Firing struct {
	Rule Rule  // the rule that fired
	Step Step  // the step it fired at, as recorded when it fired
	Err  error // what the step returned to database/sql: the injected error, nil when the step went on (latency)
	// Unheeded, for cancel-blocked, says the step did not heed the
	// cancellation: it was still blocked CancelBlockedBound after the
	// caller's context was cancelled (the lock was then released so that
	// nothing hangs), or its statement still waited on the server after the
	// call returned. For cancel on a PgxInjector, it says the request was
	// made under a context not the caller's (it wraps ErrForeignContext).
	// Nil otherwise.
	Unheeded error
}

// String prints the firing as "step 7 (commit): pgerr=40001 -> <error>".
func (f Firing) String() string {
	s := fmt.Sprintf("step %d (%s): %s", f.Step.Index, f.Step.Kind, f.Rule.Fault)
	if f.Err != nil {
		s += " -> " + f.Err.Error()
	}
	return s
}

// NewInjector returns an Injector with no plan armed: it records the trace
// and injects nothing.
func NewInjector(opts ...InjectorOption) *Injector {
	cfg := injectorConfig{maxRows: 1000, maxSteps: 100000}
	for _, o := range opts {
		o(&cfg)
	}
	return &Injector{
		cfg:      cfg,
		dead:     map[uint64]bool{},
		openRows: map[uint64]int{},
		pending:  map[*drvwrap.Call]pending{},
		prints:   map[string]string{},
		cols:     map[string][]string{},
		unheeded: map[int]error{},
	}
}

// WrapConnector returns c with every driver call recorded and exposed to
// the plan.
func (i *Injector) WrapConnector(c driver.Connector) driver.Connector {
	return drvwrap.WrapConnector(c, i.hooks())
}

// WrapDriver returns d with every driver call recorded and exposed to the
// plan. The result implements driver.DriverContext, so a pool can be opened
// on it without registering it: see the package example.
func (i *Injector) WrapDriver(d driver.Driver) driver.Driver {
	return drvwrap.WrapDriver(d, i.hooks())
}

// Arm replaces the plan and starts a new run: the trace, the firings and the
// match counts start again from step 1. Connections broken by earlier faults
// stay broken. It is Use(p.Decider()).
func (i *Injector) Arm(p Plan) { i.use(p.decider()) }

// Use makes d decide the steps from now on and starts a new run, as Arm
// does: the trace and the firings start again from step 1. A nil d injects
// nothing.
func (i *Injector) Use(d Decider) { i.use(d) }

func (i *Injector) use(d Decider) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.dec = d
	i.chunks = nil
	i.kept = 0
	i.steps = 0
	i.fired = nil
	i.rowBuf, i.rowsBuf = nil, nil
	i.nfired = 0
	clear(i.openRows)
	clear(i.unheeded)
}

// Reset disarms the plan and starts a new run (Arm with an empty plan).
func (i *Injector) Reset() { i.Arm(Plan{}) }

// Trace returns the steps recorded since the last Arm or Reset.
func (i *Injector) Trace() Trace {
	i.mu.Lock()
	defer i.mu.Unlock()
	t := make(Trace, 0, i.kept)
	for _, c := range i.chunks {
		t = append(t, c...)
	}
	return t
}

// Fired returns the rules that fired since the last Arm, Use or Reset, in
// order: the latest 100000 of them (WithMaxSteps), see FiredCount.
func (i *Injector) Fired() []Firing {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := append([]Firing(nil), i.fired...)
	for n := range out {
		out[n].Unheeded = i.unheeded[out[n].Step.Index]
	}
	return out
}

// FiredCount returns how many rules fired since the last Arm, Use or Reset.
func (i *Injector) FiredCount() int64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.nfired
}

type cancelKey struct{ i *Injector }

// Context returns a context derived from parent that a cancel fault of this
// injector cancels. Run the code under test with it; a cancel fault at a
// step whose context did not come from here returns context.Canceled
// without cancelling anything (and says so in the error).
func (i *Injector) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	return context.WithValue(ctx, cancelKey{i}, cancel), cancel
}

const chunkSize = 256

// at returns the kept step with index idx, or nil.
func (i *Injector) at(idx int) *Step {
	if idx < 1 || idx > i.kept {
		return nil
	}
	return &i.chunks[(idx-1)/chunkSize][(idx-1)%chunkSize]
}

// record counts st and keeps it while the trace is under its bound.
func (i *Injector) record(st Step) {
	i.steps++
	if i.kept >= i.cfg.maxSteps {
		return
	}
	if i.kept%chunkSize == 0 {
		i.chunks = append(i.chunks, make([]Step, 0, chunkSize))
	}
	last := len(i.chunks) - 1
	i.chunks[last] = append(i.chunks[last], st)
	i.kept++
}

func stepKindOf(op drvwrap.Op) StepKind {
	switch op {
	case drvwrap.OpConnect:
		return StepConnect
	case drvwrap.OpBegin:
		return StepBegin
	case drvwrap.OpPrepare:
		return StepPrepare
	case drvwrap.OpExec, drvwrap.OpStmtExec:
		return StepExec
	case drvwrap.OpQuery, drvwrap.OpStmtQuery:
		return StepQuery
	case drvwrap.OpRowsNext:
		return StepNext
	case drvwrap.OpRowsClose:
		return StepRowsClose
	case drvwrap.OpStmtClose:
		return StepStmtClose
	case drvwrap.OpCommit:
		return StepCommit
	case drvwrap.OpRollback:
		return StepRollback
	case drvwrap.OpResetSession:
		return StepReset
	case drvwrap.OpIsValid:
		return StepIsValid
	case drvwrap.OpPing:
		return StepPing
	case drvwrap.OpClose:
		return StepClose
	}
	return 0
}

func (i *Injector) hooks() drvwrap.Hooks {
	return drvwrap.Hooks{Before: i.before, After: i.after, NextConnID: func() uint64 { return i.connIDs.Add(1) }}
}

// fingerprintLocked returns the fingerprint of sql, cached.
func (i *Injector) fingerprintLocked(sql string) string {
	if sql == "" {
		return ""
	}
	if fp, ok := i.prints[sql]; ok {
		return fp
	}
	fp := Fingerprint(sql)
	if len(i.prints) < 4096 {
		i.prints[sql] = fp
	}
	return fp
}

func (r Rule) matches(st *Step) bool {
	if r.Step != 0 || r.Match != st.Kind {
		return false
	}
	if r.Pattern == "" {
		return true
	}
	p := strings.ToLower(r.Pattern)
	return strings.Contains(strings.ToLower(st.SQL), p) || strings.Contains(strings.ToLower(st.Fingerprint), p)
}

func (i *Injector) before(ctx context.Context, c *drvwrap.Call) error {
	kind := stepKindOf(c.Op)
	i.mu.Lock()
	st := Step{
		Index:    i.steps + 1,
		Kind:     kind,
		SQL:      c.SQL,
		Args:     len(c.Args),
		Conn:     c.ConnID,
		Prepared: c.Op == drvwrap.OpStmtExec || c.Op == drvwrap.OpStmtQuery,
	}
	switch kind {
	case StepBegin:
		st.ReadOnly = c.TxOptions.ReadOnly
		st.Isolation = int(c.TxOptions.Isolation)
	case StepExec:
		st.RowsAffected = -1
	case StepNext, StepRowsClose:
		if qs := i.at(i.openRows[c.ConnID]); qs != nil {
			if qs.Columns == nil {
				qs.Columns = i.columnsLocked(c.SQL, c.Columns)
			}
			st.Columns = qs.Columns
			st.Fingerprint = qs.Fingerprint // the query's: no lookup per row
		} else {
			st.Columns = i.columnsLocked(c.SQL, c.Columns)
		}
	}
	if st.Fingerprint == "" {
		st.Fingerprint = i.fingerprintLocked(c.SQL)
	}
	c.Tag = st.Index
	if i.dead[c.ConnID] && kind != StepConnect {
		// The fault closed the driver's conn already (as the driver would
		// after a fatal error): database/sql learns it at its next call.
		var err error = driver.ErrBadConn
		st.Err = err
		switch kind {
		case StepClose:
			err, st.Err = drvwrap.ErrHandled, nil
			// After is not called: forget the conn here.
			delete(i.dead, c.ConnID)
			i.tx.End(c.ConnID)
			delete(i.openRows, c.ConnID)
		case StepCommit, StepRollback:
			// The driver still ends its transaction (and fails on the
			// closed conn), so that its own cleanup runs as after a real
			// failure.
			err = &drvwrap.EndTx{Err: err}
		}
		i.record(st)
		i.mu.Unlock()
		return err
	}
	switch i.tx.Before(c.ConnID, kind) {
	case txFailStatement:
		err := PgError(CodeInFailedTransaction)
		st.Err = err
		i.record(st)
		i.mu.Unlock()
		return err
	case txCommitRollback:
		// Postgres answers the COMMIT of an aborted transaction with a
		// ROLLBACK: the driver's own Rollback ends it, and the conn stays
		// usable.
		st.Err = pgx.ErrTxCommitRollback
		i.record(st)
		i.mu.Unlock()
		return &drvwrap.EndTx{Err: pgx.ErrTxCommitRollback, Rollback: true}
	}
	var rule Rule
	hit := false
	if i.dec != nil {
		rule, hit = i.dec.Decide(&st)
	}
	if hit {
		f := rule.Fault
		st.Fault = &f
	}
	i.record(st)
	i.mu.Unlock()
	if !hit {
		return nil
	}
	err := i.fire(ctx, c, st, rule)
	if err != nil && (kind == StepCommit || kind == StepRollback) {
		// The driver never saw the end of the transaction: leave the conn
		// as a driver leaves one whose COMMIT or ROLLBACK failed (pgx closes
		// it), so the server ends the session and its transaction instead of
		// database/sql pooling a conn still inside it.
		i.markDead(c)
		// The driver still ends its transaction on the closed conn, so
		// that its own cleanup runs.
		return &drvwrap.EndTx{Err: err}
	}
	if err != nil {
		switch kind {
		case StepExec, StepQuery, StepNext, StepPrepare:
			// An error inside a transaction aborts it on the server: mark
			// it so (unless the fault ended the conn).
			i.mu.Lock()
			if !i.dead[c.ConnID] {
				i.tx.Injected(c.ConnID, kind)
			}
			i.mu.Unlock()
		}
	}
	return err
}

// fire carries out rule's fault at step st and records the firing. (A
// function of its own so that st escapes to the heap only when a rule fires.)
func (i *Injector) fire(ctx context.Context, c *drvwrap.Call, st Step, rule Rule) error {
	record := func(err error) {
		i.mu.Lock()
		defer i.mu.Unlock()
		if s := i.at(st.Index); s != nil && err != nil {
			s.Err = err
		}
		i.nfired++
		if len(i.fired) >= i.cfg.maxSteps {
			i.fired = append(i.fired[:0], i.fired[len(i.fired)/2:]...) // keep the latest
		}
		i.fired = append(i.fired, Firing{Rule: rule, Step: st, Err: err})
	}
	return i.apply(ctx, c, &st, rule.Fault, record)
}

// apply carries out fault f at step st; fire records the firing (before a
// panic, after anything else).
func (i *Injector) apply(ctx context.Context, c *drvwrap.Call, st *Step, f Fault, fire func(error)) error {
	if err := f.Validate(); err != nil {
		err = fmt.Errorf("inject at step %d: %w", st.Index, err)
		fire(err)
		return err
	}
	var err error
	switch f.Kind {
	case KindError:
		err = fmt.Errorf("%s at step %d: %w", st.Kind, st.Index, ErrInjected)
	case KindPgErr:
		if fatalCode(f.Code) {
			i.markDead(c)
		}
		err = PgError(f.Code)
	case KindBadConn:
		i.markDead(c)
		err = driver.ErrBadConn
	case KindCancel:
		if cancel, ok := ctx.Value(cancelKey{i}).(context.CancelFunc); ok {
			cancel()
			err = ctx.Err()
		} else {
			err = fmt.Errorf("cancel at step %d: nothing was cancelled: %w: %w", st.Index, ErrForeignContext, context.Canceled)
		}
	case KindLatency:
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			err = ctx.Err()
		}
	case KindPanic:
		p := &InjectedPanic{Step: st.Index, Kind: st.Kind}
		if st.Kind == StepCommit || st.Kind == StepRollback {
			i.markDead(c) // as for an error there: the transaction must not outlive the conn's use
		}
		fire(p)
		panic(p)
	default:
		err = i.applyMechanism(ctx, c, st, f)
	}
	fire(err)
	return err
}

// markDead closes the driver's conn of c, as a driver does after a fatal
// error (on Postgres the session ends and its transaction rolls back), and
// answers every later call on it with driver.ErrBadConn.
func (i *Injector) markDead(c *drvwrap.Call) {
	if c.Op == drvwrap.OpConnect || c.Conn == nil {
		return // no conn yet: the connect fails
	}
	if c.Op == drvwrap.OpClose {
		return // database/sql closes it anyway
	}
	i.mu.Lock()
	already := i.dead[c.ConnID]
	i.dead[c.ConnID] = true
	i.tx.End(c.ConnID) // the session, and its transaction, end with the conn
	i.mu.Unlock()
	if !already {
		_ = c.Conn.Close()
	}
}

func (i *Injector) after(_ context.Context, c *drvwrap.Call, err error) error {
	i.mu.Lock()
	if len(i.pending) > 0 {
		if p := i.pending[c]; p != nil {
			delete(i.pending, c)
			i.mu.Unlock()
			p(c) // outside the lock: it talks to the server
			i.mu.Lock()
		}
	}
	defer i.mu.Unlock()
	i.tx.After(c.ConnID, stepKindOf(c.Op), err)
	st := i.at(c.Tag)
	if st == nil {
		return err // not kept (WithMaxSteps), or the trace was reset (Arm) while the call ran
	}
	if st.Conn != c.ConnID || st.Kind != stepKindOf(c.Op) {
		return err // likewise
	}
	st.Err = err
	switch st.Kind {
	case StepExec:
		st.RowsAffected = c.RowsAffected
	case StepQuery:
		if err == nil {
			i.openRows[c.ConnID] = st.Index
		}
	case StepNext:
		if err != nil || c.Row == nil {
			break
		}
		row := i.copyRow(c.Row)
		if qs := i.at(i.openRows[c.ConnID]); qs != nil && len(qs.Rows) < i.cfg.maxRows {
			if qs.Rows == nil {
				qs.Rows = i.firstRow(row)
			} else {
				qs.Rows = append(qs.Rows, row)
			}
			n := len(qs.Rows)
			st.Rows = qs.Rows[n-1 : n : n] // shares the query step's array: no allocation
		} else {
			if qs != nil {
				qs.Truncated = true
			}
			st.Rows = [][]driver.Value{row}
		}
	case StepRowsClose:
		delete(i.openRows, c.ConnID)
	case StepClose:
		delete(i.openRows, c.ConnID)
		delete(i.dead, c.ConnID)
	}
	return err
}

// copyRow returns a copy of row (the driver reuses its slice, and may reuse
// a []byte's memory) cut from the injector's row buffer: many rows share one
// allocation. Rows once returned are never written again.
func (i *Injector) copyRow(row []driver.Value) []driver.Value {
	if cap(i.rowBuf)-len(i.rowBuf) < len(row) {
		i.rowBuf = make([]driver.Value, 0, max(rowBufSize, len(row)))
	}
	start := len(i.rowBuf)
	for _, v := range row {
		if b, ok := v.([]byte); ok {
			v = append([]byte(nil), b...)
		}
		i.rowBuf = append(i.rowBuf, v)
	}
	return i.rowBuf[start:len(i.rowBuf):len(i.rowBuf)]
}

// firstRow returns a one-row slice holding row, cut from the injector's
// buffer of row headers (most queries read one row: one allocation serves
// many of them); appending to it copies it out as usual.
func (i *Injector) firstRow(row []driver.Value) [][]driver.Value {
	if len(i.rowsBuf) == cap(i.rowsBuf) {
		i.rowsBuf = make([][]driver.Value, 0, rowBufSize)
	}
	n := len(i.rowsBuf)
	i.rowsBuf = append(i.rowsBuf, row)
	return i.rowsBuf[n : n+1 : n+1]
}

// columnsLocked returns a copy of cols, the column names of sql's rows,
// shared with the earlier steps of the same SQL that had the same names
// (one copy per SQL text, not per query).
func (i *Injector) columnsLocked(sql string, cols []string) []string {
	if c, ok := i.cols[sql]; ok && slices.Equal(c, cols) {
		return c
	}
	c := append([]string{}, cols...)
	if len(i.cols) < 4096 {
		i.cols[sql] = c
	}
	return c
}

// rowBufSize is how many values (or rows) one buffer holds.
const rowBufSize = 128
