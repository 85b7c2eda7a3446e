package faults

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PgxInjector records the steps of code that talks to PostgreSQL through
// pgx directly (pgx.Conn, pgxpool, pgx.Tx, sqlc's pgx DBTX) and fires a Plan
// at step N, all on the wire. Installed on a *pgconn.Config (Install), it
// decodes the frontend messages of every connection opened with that config
// and records one Step per protocol request, in the same Trace format the
// database/sql Injector prints:
//
//   - the startup message: a connect step;
//   - a simple Query: a begin, commit, rollback or ping step when its SQL is
//     one ("begin", "commit", "rollback", pgx's "-- ping"), else an exec or
//     query step (query when the SQL reads rows: SELECT, WITH, VALUES, SHOW,
//     TABLE, or RETURNING);
//   - an extended-protocol request (Parse, Bind, Describe, Execute, up to its
//     Sync or Flush): one exec or query step with the SQL of the statement
//     executed (a prepared statement's SQL comes from its Parse), or a
//     prepare step for a Parse without Execute, a stmt-close step for Close
//     alone; a batch (several Executes in one request) is one step whose SQL
//     joins the statements with "; ";
//   - COPY: the Query that starts it is an exec step; its CopyData pass
//     through;
//   - Terminate: a close step.
//
// Steps carry no rows or affected counts: the injector reads only what the
// client sends.
//
// At the targeted step (Plan rules by step index or by match) the request is
// replaced or cut, so that what the client sees is what PostgreSQL itself
// answers:
//
//   - pgerr=CODE: the request is replaced by a simple Query that makes the
//     server raise that SQLSTATE (DO ... RAISE ... USING ERRCODE); at a commit
//     step by "ROLLBACK; DO ...", as a failed COMMIT ends the transaction. The
//     client gets a genuine *pgconn.PgError and an ErrorResponse followed by
//     ReadyForQuery where it expected the request's reply (the server skips to
//     Sync on any error), and the transaction is as aborted as the server
//     leaves it: the next statement in it gets 25P02. The session-ending codes
//     (57P01 and the 08 class) replace the request with
//     "SELECT pg_terminate_backend(pg_backend_pid())": the connection's own
//     backend ends, and the client gets the server's FATAL 57P01;
//   - terminate: the same self-termination (this connection's backend only);
//   - cut: the connection is closed instead of sending the request;
//   - cut-after, ambiguous (commit only): the request is sent, the server's
//     reply awaited and discarded, and the connection closed;
//   - latency: the request waits Fault.Delay before it is sent;
//   - cancel: the context from Context is cancelled and the request is held
//     back until pgx gives up on it (pgx sets a deadline on the connection
//     when its context ends), so it never reaches the server; a request pgx
//     does not give up on within 200ms (a connect, which pgxpool makes under
//     its own context) is then sent. Any other request pgx has not given up
//     on within CancelBlockedBound was made under a context that is not the
//     caller's (context.Background(), one the code made itself): it is sent,
//     and its Firing's Unheeded says so (wrapping ErrForeignContext).
//
// The driver-level kinds (error, badconn, panic) and the lock and
// stmt-timeout kinds have no meaning on the wire: Arm rejects a plan that
// holds them; ApplicablePgx lists the faults per step.
//
// A request is acted on when its last message (Query, Sync, Flush) is
// written; pgconn writes each request in one write, so the whole request is
// replaced or cut. Were a request split over several writes, its earlier
// messages would already have been sent.
//
// Only the connections opened with the config it is installed on are
// counted and faulted: install it on the pool under test alone. A
// PgxInjector is safe for concurrent use; create it with NewPgxInjector.
type PgxInjector struct {
	mu     sync.Mutex
	dec    Decider // nil: nothing fires
	trace  Trace
	steps  int
	fired  []Firing
	cancel context.CancelFunc
	prints map[string]string

	nextConn atomic.Uint64
	armed    atomic.Bool
}

// NewPgxInjector returns a PgxInjector with no plan armed: it records the
// trace and injects nothing.
func NewPgxInjector() *PgxInjector {
	return &PgxInjector{prints: map[string]string{}}
}

// Install makes every connection opened with cfg go through the injector,
// by setting cfg.AfterNetConnect (one already set runs first). For pgxpool:
// Install(&poolConfig.ConnConfig.Config); for pgx.Connect:
// Install(&connConfig.Config). The session must not use TLS
// (sslmode=disable): the injector reads the protocol in clear. Install
// once per config.
func (i *PgxInjector) Install(cfg *pgconn.Config) {
	prev := cfg.AfterNetConnect
	cfg.AfterNetConnect = func(ctx context.Context, c *pgconn.Config, conn net.Conn) (net.Conn, error) {
		if prev != nil {
			var err error
			if conn, err = prev(ctx, c, conn); err != nil {
				return nil, err
			}
		}
		return i.wrap(conn), nil
	}
}

// wrap returns conn going through the injector.
func (i *PgxInjector) wrap(conn net.Conn) *pgxConn {
	c := &pgxConn{inj: i, id: i.nextConn.Add(1), stmts: map[string]string{}}
	c.init(conn, "faults: pgx injector")
	return c
}

// Arm replaces the plan and starts a new run: the trace, the firings and
// the match counts start again from step 1. A plan with a fault the wire
// cannot apply (error, badconn, panic, lock, stmt-timeout) is an error that
// wraps ErrInvalidFault, and the injector is left disarmed.
func (i *PgxInjector) Arm(p Plan) error {
	var bad error
	for _, r := range p.Rules {
		if !pgxKind(r.Fault.Kind) {
			bad = fmt.Errorf("faults: pgx injector: arm %s: %s has no meaning on the wire: %w", r, r.Fault.Kind, ErrInvalidFault)
			break
		}
	}
	if bad != nil {
		i.use(nil)
		return bad
	}
	d := p.decider()
	d.commitAmbiguous = true // cut-after-commit has no meaning at another step
	if len(p.Rules) == 0 {
		i.use(nil)
	} else {
		i.use(d)
	}
	return nil
}

// Use makes d decide the steps from now on and starts a new run, as Arm
// does. A fault d returns that the wire cannot apply (error, badconn,
// panic, lock, stmt-timeout; ambiguous at a step other than a commit) is
// not fired: give d a FaultSet built on ApplicablePgx. A nil d injects
// nothing.
func (i *PgxInjector) Use(d Decider) { i.use(d) }

func (i *PgxInjector) use(d Decider) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.dec = d
	i.trace, i.steps, i.fired = nil, 0, nil
	i.armed.Store(d != nil)
}

// Reset disarms the plan and starts a new run.
func (i *PgxInjector) Reset() { _ = i.Arm(Plan{}) }

// Trace returns the steps recorded since the last Arm or Reset.
func (i *PgxInjector) Trace() Trace {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append(Trace(nil), i.trace...)
}

// Fired returns the rules that fired since the last Arm or Reset, in order.
func (i *PgxInjector) Fired() []Firing {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]Firing(nil), i.fired...)
}

// Context returns a context derived from parent that a cancel fault of this
// injector cancels (the latest one handed out). Run the code under test
// with it.
func (i *PgxInjector) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	i.mu.Lock()
	i.cancel = cancel
	i.mu.Unlock()
	return ctx, cancel
}

func pgxKind(k Kind) bool {
	switch k {
	case KindPgErr, KindCancel, KindLatency, KindCut, KindCutAfter, KindAmbiguous, KindTerminate:
		return true
	}
	return false
}

// ApplicablePgx returns the faults tried at a step of kind k recorded by a
// PgxInjector on PostgreSQL: the real SQLSTATE errors the server can raise
// there, cancel, latency, and the cut, cut-after (ambiguous at a commit) and
// terminate kinds. A connection failure (08006) is not among them: on the
// wire it is a cut (the client gets a real network error), and a plan's
// pgerr=08006 ends the backend as 57P01 does, which is what the client
// then sees. Where pgerr=57P01 and terminate would both end the backend
// (rollback), terminate alone is tried.
func ApplicablePgx(k StepKind) []Fault {
	latency := Fault{Kind: KindLatency, Delay: DefaultLatency}
	cancel := Fault{Kind: KindCancel}
	switch k {
	case StepConnect:
		return []Fault{cancel, latency, {Kind: KindCut}}
	case StepBegin, StepPrepare:
		return []Fault{pg(CodeAdminShutdown), cancel, latency, {Kind: KindCut}, {Kind: KindTerminate}}
	case StepExec, StepQuery:
		return []Fault{pg(CodeSerializationFailure), pg(CodeDeadlockDetected), pg(CodeUniqueViolation),
			pg(CodeQueryCanceled), pg(CodeAdminShutdown), cancel, latency,
			{Kind: KindCut}, {Kind: KindCutAfter}, {Kind: KindTerminate}}
	case StepCommit:
		return []Fault{pg(CodeSerializationFailure), pg(CodeUniqueViolation), pg(CodeAdminShutdown),
			cancel, latency, {Kind: KindCut}, {Kind: KindAmbiguous}, {Kind: KindTerminate}}
	case StepRollback:
		return []Fault{latency, {Kind: KindCut}, {Kind: KindTerminate}}
	case StepPing:
		return []Fault{latency, {Kind: KindCut}}
	}
	return nil
}

// pgxRequest is one protocol request as the client wrote it.
type pgxRequest struct {
	kind     StepKind
	sqls     []string
	args     int
	prepared bool
}

// step records r on conn and returns the fault to apply, if any.
func (i *PgxInjector) step(conn uint64, r pgxRequest) (Step, *Fault) {
	sql := strings.Join(r.sqls, "; ")
	i.mu.Lock()
	defer i.mu.Unlock()
	i.steps++
	st := Step{Index: i.steps, Kind: r.kind, SQL: sql, Args: r.args, Conn: conn, Prepared: r.prepared, Wire: true}
	if sql != "" {
		fp, ok := i.prints[sql]
		if !ok {
			fp = Fingerprint(sql)
			if len(i.prints) < 4096 {
				i.prints[sql] = fp
			}
		}
		st.Fingerprint = fp
	}
	var fire *Fault
	if i.armed.Load() {
		if rule, ok := i.dec.Decide(&st); ok && pgxKind(rule.Fault.Kind) && (rule.Fault.Kind != KindAmbiguous || st.Kind == StepCommit) {
			f := rule.Fault
			fire = &f
			st.Fault = &f
			if len(i.fired) >= 100000 {
				i.fired = append(i.fired[:0], i.fired[len(i.fired)/2:]...) // keep the latest
			}
			i.fired = append(i.fired, Firing{Rule: rule, Step: st})
		}
	}
	if len(i.trace) < 100000 {
		i.trace = append(i.trace, st)
	}
	return st, fire
}

// setErr records what a fired step returned to the client.
func (i *PgxInjector) setErr(index int, err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n := range i.fired {
		if i.fired[n].Step.Index == index {
			i.fired[n].Err = err
		}
	}
	for n := range i.trace {
		if i.trace[n].Index == index {
			i.trace[n].Err = err
		}
	}
}

// setUnheeded records that the request of a fired step did not heed its
// cancel fault.
func (i *PgxInjector) setUnheeded(index int, err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n := range i.fired {
		if i.fired[n].Step.Index == index {
			i.fired[n].Unheeded = err
		}
	}
}

// sqlSuffixOf is ": <sql>" (shortened) for a step with SQL, or "".
func sqlSuffixOf(sql string) string {
	if sql == "" {
		return ""
	}
	return ": " + shorten(sql, 80)
}

func (i *PgxInjector) cancelFunc() context.CancelFunc {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cancel
}

// pgxConn is the net.Conn a PgxInjector hands to pgconn.
type pgxConn struct {
	cutConn
	inj *PgxInjector
	id  uint64

	wmu     sync.Mutex
	buf     []byte // bytes not yet forwarded: an incomplete message, or a request not yet complete
	started bool
	opaque  bool
	stmts   map[string]string   // prepared statement name -> SQL
	kinds   map[string]StepKind // SQL -> its simpleKind
	one     [1]string           // backing array of req.sqls for a request of one statement
	portal  string              // SQL bound to the unnamed portal
	req     pgxRequest
	parsed  []string // SQL parsed in this request
	execs   int
	closes  int
}

// Write decodes the messages in p, records a step per completed request and
// forwards or replaces it.
func (c *pgxConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.cut.Load() {
		return 0, fmt.Errorf("faults: pgx injector: write: %w", ErrWireCut)
	}
	if c.opaque {
		return c.Conn.Write(p)
	}
	data := p
	if len(c.buf) > 0 {
		c.buf = append(c.buf, p...)
		data = c.buf
	}
	// data[:sent] is forwarded; data[sent:pos] decoded and held back, of
	// which data[start:pos] is the request under way.
	sent, start, pos := 0, 0, 0
	for pos < len(data) {
		n := c.frame(data[pos:])
		if c.opaque {
			pos = len(data)
			break
		}
		if n == 0 {
			break
		}
		end := pos + n
		typ := data[pos]
		req, complete := c.decode(data[pos:end])
		pos = end
		if !complete {
			if c.started && outsideRequest(typ) {
				start = pos
			}
			continue
		}
		st, f := c.inj.step(c.id, req)
		if f == nil {
			start = pos
			continue
		}
		if start > sent {
			if _, err := c.Conn.Write(data[sent:start]); err != nil {
				c.buf = c.buf[:0]
				return 0, err
			}
		}
		if err := c.apply(st, *f, data[start:pos]); err != nil {
			c.buf = c.buf[:0]
			c.inj.setErr(st.Index, err)
			return 0, err
		}
		sent, start = pos, pos
	}
	if sent < pos {
		if _, err := c.Conn.Write(data[sent:pos]); err != nil {
			c.buf = c.buf[:0]
			return 0, err
		}
	}
	if pos < len(data) {
		rest := append([]byte(nil), data[pos:]...)
		c.buf = append(c.buf[:0], rest...)
	} else {
		c.buf = c.buf[:0]
	}
	return len(p), nil
}

// outsideRequest reports whether a message of type typ stands alone, outside
// any request: a password, COPY data, a function call.
func outsideRequest(typ byte) bool {
	switch typ {
	case 'p', 'd', 'c', 'f', 'F':
		return true
	}
	return false
}

// frame returns the length of the first message in b, or 0 if incomplete.
func (c *pgxConn) frame(b []byte) int {
	n, opaque := frontendFrame(b, c.started)
	c.opaque = c.opaque || opaque
	return n
}

// decode takes one message; it returns the request it completes, if any.
func (c *pgxConn) decode(msg []byte) (pgxRequest, bool) {
	if !c.started {
		code := binary.BigEndian.Uint32(msg[4:])
		switch {
		case code>>16 == 3:
			c.started = true
			return pgxRequest{kind: StepConnect}, true
		case code == sslRequestCode || code == gssEncRequestCode:
			c.opaque = true
		}
		return pgxRequest{}, false
	}
	body := msg[5:]
	switch msg[0] {
	case 'Q':
		q, _, _ := cstring(body)
		sql := string(q)
		return pgxRequest{kind: simpleKind(sql), sqls: []string{sql}}, true
	case 'P':
		name, rest, ok := cstring(body)
		if !ok {
			break
		}
		q, _, _ := cstring(rest)
		sql := string(q)
		c.stmts[string(name)] = sql
		c.parsed = append(c.parsed, sql)
	case 'B':
		portal, rest, ok := cstring(body)
		if !ok {
			break
		}
		stmt, rest, ok := cstring(rest)
		if !ok || len(portal) != 0 {
			break
		}
		c.portal = c.stmts[string(stmt)]
		if len(stmt) != 0 {
			c.req.prepared = true
		}
		// parameter format codes, then the parameter count
		if len(rest) >= 2 {
			nf := int(binary.BigEndian.Uint16(rest))
			if off := 2 + 2*nf; len(rest) >= off+2 {
				c.req.args += int(binary.BigEndian.Uint16(rest[off:]))
			}
		}
	case 'E':
		c.execs++
		if c.req.sqls == nil {
			c.req.sqls = c.one[:0]
		}
		c.req.sqls = append(c.req.sqls, c.portal)
	case 'C':
		var name []byte
		if len(body) > 1 {
			name, _, _ = cstring(body[1:])
		}
		if body[0] == 'S' {
			delete(c.stmts, string(name))
		}
		c.closes++
	case 'S', 'H':
		r := c.req
		switch {
		case c.execs == 1:
			r.kind = c.kindOf(r.sqls[0])
		case c.execs > 1:
			r.kind = StepExec
			for _, s := range r.sqls {
				if c.kindOf(s) == StepQuery {
					r.kind = StepQuery
				}
			}
		case len(c.parsed) > 0:
			r.kind, r.sqls = StepPrepare, c.parsed
		case c.closes > 0:
			r.kind = StepStmtClose
		}
		c.req, c.parsed, c.execs, c.closes = pgxRequest{}, nil, 0, 0
		if r.kind == 0 {
			return r, false // a Sync alone, or a Describe: no step
		}
		return r, true
	case 'X':
		return pgxRequest{kind: StepClose}, true
	}
	return pgxRequest{}, false
}

// kindOf is simpleKind, remembered per SQL text.
func (c *pgxConn) kindOf(sql string) StepKind {
	if k, ok := c.kinds[sql]; ok {
		return k
	}
	k := simpleKind(sql)
	if c.kinds == nil {
		c.kinds = map[string]StepKind{}
	}
	if len(c.kinds) < 1024 {
		c.kinds[sql] = k
	}
	return k
}

// simpleKind classifies a statement by its first word, without allocating.
func simpleKind(sql string) StepKind {
	s := strings.TrimLeft(sql, " \t\r\n(")
	if strings.HasPrefix(s, "-- ping") {
		return StepPing
	}
	w := s
	if i := strings.IndexAny(s, " \t\r\n;("); i >= 0 {
		w = s[:i]
	}
	switch {
	case strings.EqualFold(w, "begin"), strings.EqualFold(w, "start"):
		return StepBegin
	case strings.EqualFold(w, "commit"), strings.EqualFold(w, "end"):
		return StepCommit
	case strings.EqualFold(w, "rollback"), strings.EqualFold(w, "abort"):
		if !containsFold(s, " to ") {
			return StepRollback
		}
	case strings.EqualFold(w, "select"), strings.EqualFold(w, "with"), strings.EqualFold(w, "values"),
		strings.EqualFold(w, "show"), strings.EqualFold(w, "table"), strings.EqualFold(w, "fetch"):
		return StepQuery
	}
	if containsFold(s, "returning") {
		return StepQuery
	}
	return StepExec
}

// containsFold reports whether s contains the lower-case ASCII word sub,
// in any case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 == sub[0] && strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// injectedQuery returns the simple Query message replacing a request for f.
func injectedQuery(st Step, f Fault) []byte {
	var sql string
	switch {
	case f.Kind == KindTerminate, f.Kind == KindPgErr && (f.Code == CodeAdminShutdown || strings.HasPrefix(f.Code, "08")):
		sql = "SELECT pg_terminate_backend(pg_backend_pid())"
	default:
		sql = fmt.Sprintf("DO $sessionsafe$BEGIN RAISE EXCEPTION USING ERRCODE = '%s', MESSAGE = 'sessionsafe: injected %s at step %d'; END$sessionsafe$",
			f.Code, f.Code, st.Index)
		if st.Kind == StepCommit {
			sql = "ROLLBACK; " + sql
		}
	}
	msg := make([]byte, 5, 6+len(sql))
	msg[0] = 'Q'
	binary.BigEndian.PutUint32(msg[1:], uint32(4+len(sql)+1))
	msg = append(msg, sql...)
	return append(msg, 0)
}

// apply sends req (the request's bytes, and any earlier held back) as the
// fault f says; a non-nil error is what the client's write returns.
func (c *pgxConn) apply(st Step, f Fault, req []byte) error {
	switch f.Kind {
	case KindPgErr, KindTerminate:
		if st.Kind == StepConnect {
			break
		}
		_, err := c.Conn.Write(injectedQuery(st, f))
		return err
	case KindCut:
		c.cutNow()
		return fmt.Errorf("faults: pgx injector: step %d (%s): cut: %w", st.Index, st.Kind, ErrWireCut)
	case KindCutAfter, KindAmbiguous:
		_, err := c.cutAfter(req, true) // every request the injector acts on is answered at once
		return err
	case KindLatency:
		if err := c.wait(nil, f.Delay); err != nil {
			c.cutNow()
			return fmt.Errorf("faults: pgx injector: step %d (%s): latency: %w", st.Index, st.Kind, err)
		}
	case KindCancel:
		if cancel := c.inj.cancelFunc(); cancel != nil {
			cancel()
		}
		// Hold the request until pgx, seeing its context end, sets a
		// deadline on the connection. A request made under another context
		// (pgxpool connects under the pool's own) goes on after a short
		// wait: the caller was cancelled, the request was not.
		if err := c.wait(nil, cancelHold); err != nil {
			c.cutNow()
			return fmt.Errorf("faults: pgx injector: step %d (%s): cancel: %w", st.Index, st.Kind, err)
		}
		if st.Kind == StepConnect {
			break
		}
		// pgx watches the context of every request after the connect: one
		// it is still sending was made under another context. Wait out a
		// slow watcher (a loaded machine) before saying so.
		if err := c.wait(nil, CancelBlockedBound-cancelHold); err != nil {
			c.cutNow()
			return fmt.Errorf("faults: pgx injector: step %d (%s): cancel: %w", st.Index, st.Kind, err)
		}
		c.inj.setUnheeded(st.Index, fmt.Errorf("the request at step %d (%s%s) went on %v after the caller's context was cancelled: "+
			"it was not made under the caller's context (context.Background(), or one the code made itself), so the caller's "+
			"cancellation and deadline never reach it; pass the caller's ctx down: %w",
			st.Index, st.Kind, sqlSuffixOf(st.SQL), CancelBlockedBound, ErrForeignContext))
	}
	_, err := c.Conn.Write(req)
	return err
}

// cancelHold bounds how long a cancel fault holds a request for pgx to give
// up on it.
const cancelHold = 200 * time.Millisecond
