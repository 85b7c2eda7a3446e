package drvwrap

//lint:file-ignore SA1019 a wrapping driver must keep the deprecated driver interfaces (Begin, Execer, Queryer, ColumnConverter, Stmt.Exec/Query) of the driver it wraps: database/sql still uses them when a driver has no context-aware form.

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"sync/atomic"
)

// Op names the driver call a hook sees.
type Op int

// The driver calls the wrapper reports.
const (
	OpConnect      Op = iota + 1 // Connector.Connect or Driver.Open
	OpBegin                      // Conn.BeginTx
	OpPrepare                    // Conn.PrepareContext
	OpExec                       // Conn.ExecContext
	OpQuery                      // Conn.QueryContext
	OpStmtExec                   // Stmt.ExecContext
	OpStmtQuery                  // Stmt.QueryContext
	OpStmtClose                  // Stmt.Close
	OpRowsNext                   // Rows.Next
	OpRowsClose                  // Rows.Close
	OpCommit                     // Tx.Commit
	OpRollback                   // Tx.Rollback
	OpResetSession               // SessionResetter.ResetSession
	OpIsValid                    // Validator.IsValid
	OpPing                       // Pinger.Ping
	OpClose                      // Conn.Close
)

var opNames = [...]string{
	OpConnect:      "connect",
	OpBegin:        "begin",
	OpPrepare:      "prepare",
	OpExec:         "exec",
	OpQuery:        "query",
	OpStmtExec:     "stmt-exec",
	OpStmtQuery:    "stmt-query",
	OpStmtClose:    "stmt-close",
	OpRowsNext:     "next",
	OpRowsClose:    "rows-close",
	OpCommit:       "commit",
	OpRollback:     "rollback",
	OpResetSession: "reset",
	OpIsValid:      "is-valid",
	OpPing:         "ping",
	OpClose:        "close",
}

// String returns the op's short name, such as "commit" or "rows-close".
func (o Op) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "op(" + itoa(int(o)) + ")"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Call describes one driver call. The same value is passed to Before and
// After; After sees the result fields filled in. Slices in a Call alias the
// driver's own memory and are valid only during the hook: copy what you keep.
// A connection's calls (its own, and those of its statements, rows and
// transactions) share one Call value, which the next call overwrites:
// database/sql makes one driver call at a time on a connection (it holds the
// connection's lock around each), so a Call is never in use twice at once,
// and a hook must keep no pointer to it once After has returned.
type Call struct {
	Op           Op
	ConnID       uint64              // the wrapper's id of the connection (1, 2, ... per wrapped connector or driver)
	SQL          string              // exec, query, prepare, and the statement ops (the prepared SQL)
	Args         []driver.NamedValue // exec, query, stmt-exec, stmt-query
	TxOptions    driver.TxOptions    // begin
	Columns      []string            // rows next, rows close
	Row          []driver.Value      // after rows next without error
	RowsAffected int64               // after exec and stmt-exec: rows affected, -1 unknown
	// Conn is the wrapped driver's own conn the call goes to (nil for
	// OpConnect). A hook may run a statement of its own on it (a SET, say);
	// database/sql holds the conn for the duration of the call, so nothing
	// else uses it meanwhile.
	Conn driver.Conn
	// Tag is free for the hooks' owner: Before may set it (a step number,
	// say) and After reads it back. After is not called when Before fails.
	Tag int
}

// Hooks are called around every driver call. Either may be nil.
type Hooks struct {
	// Before is called before the driver; a non-nil error is returned to
	// database/sql instead of calling the driver.
	Before func(ctx context.Context, c *Call) error
	// After sees the driver's result (err is the driver's error) and
	// returns the error database/sql gets, usually err itself.
	// For OpIsValid, err is driver.ErrBadConn when the conn reported itself
	// invalid, and a non-nil result makes it invalid.
	After func(ctx context.Context, c *Call, err error) error
	// NextConnID, when set, numbers the connections (Call.ConnID) instead
	// of the wrapper's own counter (1, 2, ... per WrapConnector or
	// WrapDriver call): a hook owner that wraps several connectors gives
	// one counter to all of them so ids never repeat.
	NextConnID func() uint64
}

func (h *Hooks) active() bool { return h.Before != nil || h.After != nil }

func (h *Hooks) before(ctx context.Context, c *Call) error {
	if h.Before == nil {
		return nil
	}
	return h.Before(ctx, c)
}

func (h *Hooks) after(ctx context.Context, c *Call, err error) error {
	if h.After == nil {
		return err
	}
	return h.After(ctx, c, err)
}

// ErrHandled, returned by Before for a close (OpClose, OpStmtClose,
// OpRowsClose), makes the call succeed without reaching the driver: for a
// hook that already closed the driver's value itself. For other ops it is an
// error like any other.
var ErrHandled = errors.New("drvwrap: call handled by the hook")

// EndTx, returned by Before for a commit or rollback, answers database/sql
// with Err, yet still ends the driver's own transaction — with the driver's
// Rollback when Rollback is set, else with the call itself — so that the
// driver runs its cleanup (a helper goroutine it started for the
// transaction, say) as it would after a real failure. The driver's answer is
// dropped; After is not called.
type EndTx struct {
	Err      error
	Rollback bool
}

// Error returns Err's text.
func (e *EndTx) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *EndTx) Unwrap() error { return e.Err }

// shared is the state one WrapConnector/WrapDriver call shares between its conns.
type shared struct {
	hooks  Hooks
	nextID atomic.Uint64
}

// WrapConnector returns a connector whose conns report every call to h.
// The result implements io.Closer when c does.
func WrapConnector(c driver.Connector, h Hooks) driver.Connector {
	s := &shared{hooks: h}
	base := &connector{inner: c, s: s}
	if _, ok := c.(io.Closer); ok {
		return &closerConnector{base}
	}
	return base
}

// WrapDriver returns a driver whose conns report every call to h. The result
// always implements driver.DriverContext: OpenConnector wraps the inner
// driver's connector, or, when it has none, opens conns with Open(name) as
// database/sql would.
func WrapDriver(d driver.Driver, h Hooks) driver.Driver {
	return &wrappedDriver{inner: d, s: &shared{hooks: h}}
}

type connector struct {
	inner driver.Connector
	s     *shared
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	return c.s.connect(ctx, func(ctx context.Context) (driver.Conn, error) { return c.inner.Connect(ctx) })
}

func (c *connector) Driver() driver.Driver {
	return &wrappedDriver{inner: c.inner.Driver(), s: c.s}
}

type closerConnector struct{ *connector }

func (c *closerConnector) Close() error { return c.inner.(io.Closer).Close() }

type wrappedDriver struct {
	inner driver.Driver
	s     *shared
}

func (d *wrappedDriver) Open(name string) (driver.Conn, error) {
	return d.s.connect(context.Background(), func(context.Context) (driver.Conn, error) { return d.inner.Open(name) })
}

func (d *wrappedDriver) OpenConnector(name string) (driver.Connector, error) {
	if dc, ok := d.inner.(driver.DriverContext); ok {
		c, err := dc.OpenConnector(name)
		if err != nil {
			return nil, err
		}
		base := &connector{inner: c, s: d.s}
		if _, ok := c.(io.Closer); ok {
			return &closerConnector{base}, nil
		}
		return base, nil
	}
	return &dsnConnector{name: name, d: d}, nil
}

type dsnConnector struct {
	name string
	d    *wrappedDriver
}

func (c *dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.name) }
func (c *dsnConnector) Driver() driver.Driver                        { return c.d }

func (s *shared) connect(ctx context.Context, open func(context.Context) (driver.Conn, error)) (driver.Conn, error) {
	var id uint64
	if s.hooks.NextConnID != nil {
		id = s.hooks.NextConnID()
	} else {
		id = s.nextID.Add(1)
	}
	var call *Call
	if s.hooks.active() {
		call = &Call{Op: OpConnect, ConnID: id}
		if err := s.hooks.before(ctx, call); err != nil {
			return nil, err
		}
	}
	ci, err := open(ctx)
	if call != nil {
		err = s.hooks.after(ctx, call, err)
	}
	if err != nil {
		if ci != nil {
			_ = ci.Close()
		}
		return nil, err
	}
	return newConn(ci, id, s), nil
}

// conn wraps a driver.Conn; the variants add SessionResetter and Validator.
type conn struct {
	inner driver.Conn
	id    uint64
	s     *shared
	call  Call // the call in progress on this conn (see Call): no call allocates one
}

// newCall returns the conn's Call, reset for a call of op.
func (c *conn) newCall(op Op) *Call {
	c.call = Call{Op: op, ConnID: c.id, Conn: c.inner}
	return &c.call
}

type connR struct{ *conn }
type connV struct{ *conn }
type connRV struct{ *conn }

func newConn(ci driver.Conn, id uint64, s *shared) driver.Conn {
	c := &conn{inner: ci, id: id, s: s}
	_, r := ci.(driver.SessionResetter)
	_, v := ci.(driver.Validator)
	switch {
	case r && v:
		return connRV{c}
	case r:
		return connR{c}
	case v:
		return connV{c}
	}
	return c
}

func (c connR) ResetSession(ctx context.Context) error  { return c.resetSession(ctx) }
func (c connRV) ResetSession(ctx context.Context) error { return c.resetSession(ctx) }
func (c connV) IsValid() bool                           { return c.isValid() }
func (c connRV) IsValid() bool                          { return c.isValid() }

// Unwrap returns the driver's own conn.
func (c *conn) Unwrap() driver.Conn { return c.inner }

func (c *conn) resetSession(ctx context.Context) error {
	r := c.inner.(driver.SessionResetter)
	h := &c.s.hooks
	if !h.active() {
		return r.ResetSession(ctx)
	}
	call := c.newCall(OpResetSession)
	if err := h.before(ctx, call); err != nil {
		return err
	}
	return h.after(ctx, call, r.ResetSession(ctx))
}

func (c *conn) isValid() bool {
	v := c.inner.(driver.Validator)
	h := &c.s.hooks
	if !h.active() {
		return v.IsValid()
	}
	ctx := context.Background()
	call := c.newCall(OpIsValid)
	if err := h.before(ctx, call); err != nil {
		return false
	}
	var err error
	if !v.IsValid() {
		err = driver.ErrBadConn
	}
	return h.after(ctx, call, err) == nil
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	h := &c.s.hooks
	var call *Call
	if h.active() {
		call = c.newCall(OpPrepare)
		call.SQL = query
		if err := h.before(ctx, call); err != nil {
			return nil, err
		}
	}
	si, err := ctxPrepare(ctx, c.inner, query)
	if call != nil {
		err = h.after(ctx, call, err)
	}
	if err != nil {
		if si != nil {
			_ = si.Close()
		}
		return nil, err
	}
	return newStmt(si, c, query), nil
}

func ctxPrepare(ctx context.Context, ci driver.Conn, query string) (driver.Stmt, error) {
	if p, ok := ci.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	si, err := ci.Prepare(query)
	if err == nil {
		select {
		default:
		case <-ctx.Done():
			_ = si.Close()
			return nil, ctx.Err()
		}
	}
	return si, err
}

func (c *conn) Close() error {
	h := &c.s.hooks
	if !h.active() {
		return c.inner.Close()
	}
	ctx := context.Background()
	call := c.newCall(OpClose)
	if err := h.before(ctx, call); err != nil {
		if errors.Is(err, ErrHandled) {
			return nil
		}
		// database/sql forgets the conn whatever Close returns: close it
		// anyway so an injected error leaks nothing.
		_ = c.inner.Close()
		return err
	}
	return h.after(ctx, call, c.inner.Close())
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

var (
	errIsolation = errors.New("sql: driver does not support non-default isolation level")
	errReadOnly  = errors.New("sql: driver does not support read-only transactions")
	errNamed     = errors.New("sql: driver does not support the use of Named Parameters")
)

func ctxBegin(ctx context.Context, ci driver.Conn, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := ci.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	if opts.Isolation != 0 {
		return nil, errIsolation
	}
	if opts.ReadOnly {
		return nil, errReadOnly
	}
	if ctx.Done() == nil {
		return ci.Begin() //nolint:staticcheck // the fallback database/sql itself uses
	}
	txi, err := ci.Begin() //nolint:staticcheck // the fallback database/sql itself uses
	if err == nil {
		select {
		default:
		case <-ctx.Done():
			_ = txi.Rollback()
			return nil, ctx.Err()
		}
	}
	return txi, err
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	h := &c.s.hooks
	var call *Call
	if h.active() {
		call = c.newCall(OpBegin)
		call.TxOptions = opts
		if err := h.before(ctx, call); err != nil {
			return nil, err
		}
	}
	txi, err := ctxBegin(ctx, c.inner, opts)
	if call != nil {
		err = h.after(ctx, call, err)
	}
	if err != nil {
		if txi != nil {
			_ = txi.Rollback()
		}
		return nil, err
	}
	return &tx{inner: txi, c: c, ctx: ctx}, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	switch c.inner.(type) {
	case driver.ExecerContext:
		if !c.s.hooks.active() {
			return c.inner.(driver.ExecerContext).ExecContext(ctx, query, args) // the fast path: no Call
		}
	case driver.Execer: //nolint:staticcheck // the fallback database/sql itself uses
	default:
		return nil, driver.ErrSkip
	}
	call := c.newCall(OpExec)
	call.SQL, call.Args = query, args
	return c.s.exec(ctx, call, c)
}

// runExec runs call (OpExec) on the driver's conn.
func (c *conn) runExec(ctx context.Context, call *Call) (driver.Result, error) {
	switch e := c.inner.(type) {
	case driver.ExecerContext:
		return e.ExecContext(ctx, call.SQL, call.Args)
	case driver.Execer: //nolint:staticcheck // the fallback database/sql itself uses
		dargs, err := namedToValues(call.Args)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return e.Exec(call.SQL, dargs)
	}
	return nil, driver.ErrSkip
}

// execer and querier run a call on the driver: a conn's exec or query, or
// a statement's. (Interfaces rather than closures: a call allocates none.)
type execer interface {
	runExec(ctx context.Context, call *Call) (driver.Result, error)
}

type querier interface {
	runQuery(ctx context.Context, call *Call) (driver.Rows, error)
}

func (s *shared) exec(ctx context.Context, call *Call, e execer) (driver.Result, error) {
	h := &s.hooks
	if !h.active() {
		return e.runExec(ctx, call)
	}
	if err := h.before(ctx, call); err != nil {
		return nil, err
	}
	res, err := e.runExec(ctx, call)
	call.RowsAffected = -1
	if err == nil && res != nil {
		if n, rerr := res.RowsAffected(); rerr == nil {
			call.RowsAffected = n
		}
	}
	if err == driver.ErrSkip {
		return nil, err
	}
	if err = h.after(ctx, call, err); err != nil {
		return nil, err
	}
	return res, nil
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	switch c.inner.(type) {
	case driver.QueryerContext:
		if !c.s.hooks.active() {
			ri, err := c.inner.(driver.QueryerContext).QueryContext(ctx, query, args) // the fast path: no Call
			if err != nil {
				return nil, err
			}
			return &rows{inner: ri, c: c, ctx: ctx, sql: query}, nil
		}
	case driver.Queryer: //nolint:staticcheck // the fallback database/sql itself uses
	default:
		return nil, driver.ErrSkip
	}
	call := c.newCall(OpQuery)
	call.SQL, call.Args = query, args
	return c.s.query(ctx, c, call, c)
}

// runQuery runs call (OpQuery) on the driver's conn.
func (c *conn) runQuery(ctx context.Context, call *Call) (driver.Rows, error) {
	switch e := c.inner.(type) {
	case driver.QueryerContext:
		return e.QueryContext(ctx, call.SQL, call.Args)
	case driver.Queryer: //nolint:staticcheck // the fallback database/sql itself uses
		dargs, err := namedToValues(call.Args)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return e.Query(call.SQL, dargs)
	}
	return nil, driver.ErrSkip
}

func (s *shared) query(ctx context.Context, c *conn, call *Call, q querier) (driver.Rows, error) {
	h := &s.hooks
	if !h.active() {
		ri, err := q.runQuery(ctx, call)
		if err != nil {
			return nil, err
		}
		return &rows{inner: ri, c: c, ctx: ctx, sql: call.SQL}, nil
	}
	sql := call.SQL // the Call is the conn's: read what rows need before the hooks run
	if err := h.before(ctx, call); err != nil {
		return nil, err
	}
	ri, err := q.runQuery(ctx, call)
	if err == driver.ErrSkip {
		return nil, err
	}
	if err = h.after(ctx, call, err); err != nil {
		if ri != nil {
			_ = ri.Close()
		}
		return nil, err
	}
	return &rows{inner: ri, c: c, ctx: ctx, sql: sql}, nil
}

func namedToValues(named []driver.NamedValue) ([]driver.Value, error) {
	dargs := make([]driver.Value, len(named))
	for n, p := range named {
		if len(p.Name) > 0 {
			return nil, errNamed
		}
		dargs[n] = p.Value
	}
	return dargs, nil
}

func (c *conn) Ping(ctx context.Context) error {
	p, ok := c.inner.(driver.Pinger)
	if !ok {
		return nil
	}
	h := &c.s.hooks
	if !h.active() {
		return p.Ping(ctx)
	}
	call := c.newCall(OpPing)
	if err := h.before(ctx, call); err != nil {
		return err
	}
	return h.after(ctx, call, p.Ping(ctx))
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.inner.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// tx wraps a driver.Tx; it keeps the context of BeginTx for its hooks.
type tx struct {
	inner driver.Tx
	c     *conn
	ctx   context.Context
}

func (t *tx) Commit() error   { return t.end(OpCommit, t.inner.Commit) }
func (t *tx) Rollback() error { return t.end(OpRollback, t.inner.Rollback) }

func (t *tx) end(op Op, f func() error) error {
	h := &t.c.s.hooks
	if !h.active() {
		return f()
	}
	call := t.c.newCall(op)
	if err := h.before(t.ctx, call); err != nil {
		var end *EndTx
		if errors.As(err, &end) {
			if end.Rollback {
				f = t.inner.Rollback
			}
			_ = f()
			return end.Err
		}
		return err
	}
	return h.after(t.ctx, call, f())
}

// stmt wraps a driver.Stmt; stmtCC adds ColumnConverter.
type stmt struct {
	inner driver.Stmt
	c     *conn
	sql   string
}

type stmtCC struct{ *stmt }

func newStmt(si driver.Stmt, c *conn, query string) driver.Stmt {
	s := &stmt{inner: si, c: c, sql: query}
	if _, ok := si.(driver.ColumnConverter); ok { //nolint:staticcheck // preserved when the driver has it
		return stmtCC{s}
	}
	return s
}

func (s stmtCC) ColumnConverter(idx int) driver.ValueConverter {
	return s.inner.(driver.ColumnConverter).ColumnConverter(idx) //nolint:staticcheck // preserved when the driver has it
}

func (s *stmt) NumInput() int { return s.inner.NumInput() }

func (s *stmt) Close() error {
	h := &s.c.s.hooks
	if !h.active() {
		return s.inner.Close()
	}
	ctx := context.Background()
	call := s.c.newCall(OpStmtClose)
	call.SQL = s.sql
	if err := h.before(ctx, call); err != nil {
		if errors.Is(err, ErrHandled) {
			return nil
		}
		_ = s.inner.Close() // database/sql forgets the stmt: leak nothing
		return err
	}
	return h.after(ctx, call, s.inner.Close())
}

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := s.inner.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return s.c.CheckNamedValue(nv)
}

func valuesToNamed(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), valuesToNamed(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), valuesToNamed(args))
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	call := s.c.newCall(OpStmtExec)
	call.SQL, call.Args = s.sql, args
	return s.c.s.exec(ctx, call, s)
}

// runExec runs call (OpStmtExec) on the driver's statement.
func (s *stmt) runExec(ctx context.Context, call *Call) (driver.Result, error) {
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, call.Args)
	}
	dargs, err := namedToValues(call.Args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.inner.Exec(dargs) //nolint:staticcheck // the fallback database/sql itself uses
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	call := s.c.newCall(OpStmtQuery)
	call.SQL, call.Args = s.sql, args
	return s.c.s.query(ctx, s.c, call, s)
}

// runQuery runs call (OpStmtQuery) on the driver's statement.
func (s *stmt) runQuery(ctx context.Context, call *Call) (driver.Rows, error) {
	if e, ok := s.inner.(driver.StmtQueryContext); ok {
		return e.QueryContext(ctx, call.Args)
	}
	dargs, err := namedToValues(call.Args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.inner.Query(dargs) //nolint:staticcheck // the fallback database/sql itself uses
}

// rows wraps driver.Rows; every optional rows interface is implemented with
// the default database/sql uses when the wrapped rows lack it.
type rows struct {
	inner driver.Rows
	c     *conn
	ctx   context.Context
	sql   string
	cols  []string // cached for hooks
}

func (r *rows) Columns() []string { return r.inner.Columns() }

func (r *rows) columns() []string {
	if r.cols == nil {
		r.cols = r.inner.Columns()
	}
	return r.cols
}

func (r *rows) Close() error {
	h := &r.c.s.hooks
	if !h.active() {
		return r.inner.Close()
	}
	call := r.c.newCall(OpRowsClose)
	call.SQL, call.Columns = r.sql, r.columns()
	if err := h.before(r.ctx, call); err != nil {
		if errors.Is(err, ErrHandled) {
			return nil
		}
		_ = r.inner.Close() // database/sql forgets the rows: leak nothing
		return err
	}
	return h.after(r.ctx, call, r.inner.Close())
}

func (r *rows) Next(dest []driver.Value) error {
	h := &r.c.s.hooks
	if !h.active() {
		return r.inner.Next(dest)
	}
	call := r.c.newCall(OpRowsNext)
	call.SQL, call.Columns = r.sql, r.columns()
	if err := h.before(r.ctx, call); err != nil {
		return err
	}
	err := r.inner.Next(dest)
	if err == nil {
		call.Row = dest
	}
	return h.after(r.ctx, call, err)
}

func (r *rows) HasNextResultSet() bool {
	if n, ok := r.inner.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

func (r *rows) NextResultSet() error {
	if n, ok := r.inner.(driver.RowsNextResultSet); ok {
		return n.NextResultSet()
	}
	return io.EOF
}

var anyType = reflect.TypeFor[any]()

func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	if p, ok := r.inner.(driver.RowsColumnTypeScanType); ok {
		return p.ColumnTypeScanType(i)
	}
	return anyType
}

func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	if p, ok := r.inner.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return p.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	if p, ok := r.inner.(driver.RowsColumnTypeLength); ok {
		return p.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *rows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if p, ok := r.inner.(driver.RowsColumnTypeNullable); ok {
		return p.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *rows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if p, ok := r.inner.(driver.RowsColumnTypePrecisionScale); ok {
		return p.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

// Interface checks.
var (
	_ driver.Connector                      = (*connector)(nil)
	_ driver.DriverContext                  = (*wrappedDriver)(nil)
	_ driver.ExecerContext                  = (*conn)(nil)
	_ driver.QueryerContext                 = (*conn)(nil)
	_ driver.ConnPrepareContext             = (*conn)(nil)
	_ driver.ConnBeginTx                    = (*conn)(nil)
	_ driver.Pinger                         = (*conn)(nil)
	_ driver.NamedValueChecker              = (*conn)(nil)
	_ driver.SessionResetter                = connRV{}
	_ driver.Validator                      = connRV{}
	_ driver.StmtExecContext                = (*stmt)(nil)
	_ driver.StmtQueryContext               = (*stmt)(nil)
	_ driver.NamedValueChecker              = (*stmt)(nil)
	_ driver.ColumnConverter                = stmtCC{} //nolint:staticcheck // preserved when the driver has it
	_ driver.RowsNextResultSet              = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeLength           = (*rows)(nil)
	_ driver.RowsColumnTypeNullable         = (*rows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*rows)(nil)
)
