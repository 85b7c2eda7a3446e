package faults

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// ErrWireCut is returned (wrapped) by reads and writes on a connection that a
// Wire rule cut.
var ErrWireCut = errors.New("faults: wire: connection cut")

// ErrWireRule is returned (wrapped) by Wire.Arm for a rule that cannot be armed.
var ErrWireRule = errors.New("faults: wire: invalid rule")

// WireAction is what a Wire does at the targeted message.
type WireAction int

const (
	// WireCutBefore closes the connection instead of forwarding the message:
	// the server never sees it.
	WireCutBefore WireAction = iota + 1
	// WireCutAfter forwards the message, then closes the connection: the
	// server acts on it, the client never sees the reply. After a COMMIT this
	// is the ambiguous commit. After a message the server answers at once (a
	// Query, a Sync, a Flush) the close waits until the reply starts
	// arriving (discarded, never handed to the client: its reads report
	// ErrWireCut from the moment the message is forwarded; bounded by the
	// connection's deadline), so the server has provably processed the
	// request: an autocommit statement cut after its request is committed,
	// every time.
	WireCutAfter
	// WireStall blocks the write of the message until the Wire is disarmed,
	// the connection's write deadline passes (pgx sets it when the query's
	// context is cancelled) or the connection is closed; on Disarm the message
	// is forwarded and the connection goes on, on a deadline the write fails
	// with os.ErrDeadlineExceeded and the connection is closed.
	WireStall
	// WireDelay waits WireRule.Delay (less if the write deadline passes, the
	// connection is closed or the Wire disarmed) before forwarding the message.
	WireDelay
)

// String returns the action's name as used in WireRule.String.
func (a WireAction) String() string {
	switch a {
	case WireCutBefore:
		return "cut-before"
	case WireCutAfter:
		return "cut-after"
	case WireStall:
		return "stall"
	case WireDelay:
		return "delay"
	default:
		return fmt.Sprintf("WireAction(%d)", int(a))
	}
}

// Frontend message kinds a WireRule can target. Beyond the protocol's own
// message names: WireCommit is a COMMIT (or END) sent either as a
// simple-protocol Query or, in the extended protocol, as the Execute of a
// portal bound to a statement parsed from COMMIT; WireAny is any message
// (the startup message included), so "Any#1" right after arming is the next
// thing the client sends; WireRequest is a message that completes a request
// running a statement (a Query, or the Sync closing an extended-protocol
// request that holds an Execute; a prepare-only round trip of Parse, Describe,
// Sync does not count), so "Request#1:cut-after" lets the next statement
// reach the server and run, and loses its answer.
const (
	WireAny       = "Any"
	WireRequest   = "Request"
	WireStartup   = "Startup"
	WireQuery     = "Query"
	WireParse     = "Parse"
	WireBind      = "Bind"
	WireExecute   = "Execute"
	WireSync      = "Sync"
	WireDescribe  = "Describe"
	WireClose     = "Close"
	WireFlush     = "Flush"
	WireTerminate = "Terminate"
	WireCommit    = "Commit"
)

// wireTypeNames names the typed frontend messages by their type byte.
var wireTypeNames = [256]string{
	'Q': WireQuery,
	'P': WireParse,
	'B': WireBind,
	'E': WireExecute,
	'S': WireSync,
	'D': WireDescribe,
	'C': WireClose,
	'H': WireFlush,
	'X': WireTerminate,
	'p': "Password",
	'd': "CopyData",
	'c': "CopyDone",
	'f': "CopyFail",
	'F': "FunctionCall",
}

func validWireMessage(m string) bool {
	if m == WireStartup || m == WireCommit || m == WireAny || m == WireRequest {
		return true
	}
	for _, n := range wireTypeNames {
		if n != "" && n == m {
			return true
		}
	}
	return false
}

// WireRule targets the Nth frontend message of kind Message (counted from
// when the rule is armed) with Action.
type WireRule struct {
	// Message is the message kind: WireQuery, WireParse, WireBind,
	// WireExecute, WireSync, WireCommit, WireAny, WireRequest, or another
	// frontend message name
	// (WireStartup, WireDescribe, WireClose, WireFlush, WireTerminate,
	// "Password", "CopyData", "CopyDone", "CopyFail", "FunctionCall").
	Message string
	// N is the 1-based ordinal of the targeted message.
	N int
	// Action is what happens at that message.
	Action WireAction
	// Delay is the wait of WireDelay; it must be zero for other actions.
	Delay time.Duration
	// Conn, when not zero, restricts the rule to the wrapped connection with
	// that id (see WireFiring.Conn); zero counts messages on every connection.
	Conn uint64
}

// String prints the rule compactly, e.g. "Commit#1:cut-after" or
// "Query#3:delay=50ms@conn2".
func (r WireRule) String() string {
	s := fmt.Sprintf("%s#%d:%s", r.Message, r.N, r.Action)
	if r.Delay != 0 {
		s += "=" + r.Delay.String()
	}
	if r.Conn != 0 {
		s += fmt.Sprintf("@conn%d", r.Conn)
	}
	return s
}

func (r WireRule) validate() error {
	switch {
	case !validWireMessage(r.Message):
		return fmt.Errorf("arm wire rule %v: unknown message kind %q: %w", r, r.Message, ErrWireRule)
	case r.N < 1:
		return fmt.Errorf("arm wire rule %v: N must be at least 1: %w", r, ErrWireRule)
	case r.Action < WireCutBefore || r.Action > WireDelay:
		return fmt.Errorf("arm wire rule %v: unknown action: %w", r, ErrWireRule)
	case r.Action == WireDelay && r.Delay <= 0:
		return fmt.Errorf("arm wire rule %v: delay needs a positive Delay: %w", r, ErrWireRule)
	case r.Action != WireDelay && r.Delay != 0:
		return fmt.Errorf("arm wire rule %v: Delay is only for the delay action: %w", r, ErrWireRule)
	}
	return nil
}

func (r *armedWireRule) matches(m wireMsg) bool {
	switch r.Message {
	case m.name, WireAny:
		return true
	case WireCommit:
		return m.commit
	case WireRequest:
		return m.request
	}
	return false
}

// WireFiring records one rule acting on one message.
type WireFiring struct {
	Rule    WireRule // the rule that fired
	Conn    uint64   // id of the wrapped connection the message was written on
	Message string   // the message's own kind (e.g. "Query" or "Execute" for a Commit rule)
	SQL     string   // the SQL text for Query and Parse messages and for commits, else empty
	Err     error    // what the write returned to the client (nil for a forwarded message)
}

// Wire injects faults into the PostgreSQL frontend stream of the connections
// it wraps: installed with Install on a pgconn.Config (so it works for pgx,
// pgxpool and pgx stdlib alike), it decodes the frontend messages the client
// writes and, at the nth message of a kind, cuts, stalls or delays the
// connection, before or after forwarding the message. With nothing armed it
// forwards every byte unchanged, without a lock or an allocation.
//
// Counting and targeting: a rule counts the messages of its kind seen by its
// Wire after it was armed, over every connection the Wire is installed on. To
// aim at one session, install the Wire on the pool or connector that serves
// only the code under test (with SetMaxOpenConns(1) when the nth message must
// be on one connection), or set WireRule.Conn to the id of one wrapped
// connection (ids start at 1 in the order the Wire wrapped them). Mind that
// taking a connection from a database/sql pool may itself send a message:
// pgx stdlib pings ("-- ping", a Query) a connection idle for over a second.
//
// A Wire is safe for concurrent use; the zero value is not usable, create
// one with NewWire.
type Wire struct {
	mu       sync.Mutex
	rules    []*armedWireRule
	armed    atomic.Int32      // len(rules): unarmed writes take no lock
	hits     [256]atomic.Int64 // by message type byte; 0 is the startup message
	commits  atomic.Int64
	fired    []WireFiring
	release  chan struct{} // closed by Disarm to free stalled and delayed writes
	nextConn atomic.Uint64
}

type armedWireRule struct {
	WireRule
	seen int
}

// NewWire returns a Wire with no rule armed: its connections pass every byte
// through unchanged.
func NewWire() *Wire {
	return &Wire{release: make(chan struct{})}
}

// Arm adds a rule. Rules fire once each; a message fires at most one rule
// (the earliest armed), and rules armed after it do not count that message.
func (w *Wire) Arm(r WireRule) error {
	if err := r.validate(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rules = append(w.rules, &armedWireRule{WireRule: r})
	w.armed.Store(int32(len(w.rules)))
	return nil
}

// Disarm drops every rule not yet fired and releases every stalled or
// delayed write, which then forwards its message.
func (w *Wire) Disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rules = nil
	w.armed.Store(0)
	close(w.release)
	w.release = make(chan struct{})
}

// Hits returns how many messages of each kind the Wire has seen since NewWire,
// over all its connections (a commit counts as its own kind and as Query or
// Execute).
func (w *Wire) Hits() map[string]int {
	out := map[string]int{}
	for i := range w.hits {
		if n := w.hits[i].Load(); n > 0 {
			name := wireTypeNames[i]
			if i == 0 {
				name = WireStartup
			}
			out[name] = int(n)
		}
	}
	if n := w.commits.Load(); n > 0 {
		out[WireCommit] = int(n)
	}
	return out
}

// Fired returns the rules that have acted, in order.
func (w *Wire) Fired() []WireFiring {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WireFiring(nil), w.fired...)
}

// Install makes every connection opened with cfg (and its fallbacks) go
// through the Wire, by setting cfg.AfterNetConnect; an AfterNetConnect
// already set runs first. For pgx stdlib: parse a *pgx.ConnConfig, call
// Install(&connConfig.Config), then stdlib.OpenDB(*connConfig) or
// stdlib.GetConnector(*connConfig); for pgxpool:
// Install(&poolConfig.ConnConfig.Config). Cancel requests, which pgconn
// sends on connections of their own without AfterNetConnect, do not pass
// through the Wire. Install once per config: a second call wraps twice.
func (w *Wire) Install(cfg *pgconn.Config) {
	prev := cfg.AfterNetConnect
	cfg.AfterNetConnect = func(ctx context.Context, c *pgconn.Config, conn net.Conn) (net.Conn, error) {
		if prev != nil {
			var err error
			if conn, err = prev(ctx, c, conn); err != nil {
				return nil, err
			}
		}
		return w.WrapConn(conn), nil
	}
}

// WrapConn wraps a net.Conn carrying a PostgreSQL client session from its
// start (the startup message is the first thing written; TLS, if any, must
// be below the wrapper, as with AfterNetConnect).
func (w *Wire) WrapConn(c net.Conn) net.Conn {
	wc := &wireConn{w: w, id: w.nextConn.Add(1)}
	wc.init(c, "faults: wire")
	return wc
}

// Dialer returns a dialer whose connections go through the Wire, for a
// driver that takes a dialer of its own instead of pgconn's AfterNetConnect
// (lib/pq: (*pq.Connector).Dialer). It has the Dial, DialTimeout and
// DialContext methods such drivers ask for. The session must not use TLS
// (sslmode=disable): the Wire reads the protocol in clear.
func (w *Wire) Dialer() *WireDialer { return &WireDialer{w: w} }

// WireDialer dials TCP or Unix connections and wraps each with its Wire.
type WireDialer struct {
	w *Wire
	d net.Dialer
}

// Dial connects to address on the named network through the Wire.
func (d *WireDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout is Dial with a timeout on the connect.
func (d *WireDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

// DialContext is Dial with a context for the connect.
func (d *WireDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return d.w.WrapConn(c), nil
}

// wireMsg is one decoded frontend message.
type wireMsg struct {
	typ     byte // the message type byte, 0 for the startup message
	name    string
	sql     string // set for an extended-protocol commit
	sqlb    []byte // the SQL of a Query or Parse, copied only when a rule fires
	commit  bool
	request bool // a Query, or a Sync after an Execute
}

// observe counts msg and returns the rule it fires, if any, and the channel
// Disarm closes.
func (w *Wire) observe(conn uint64, m wireMsg) (*WireRule, <-chan struct{}) {
	w.hits[m.typ].Add(1)
	if m.commit {
		w.commits.Add(1)
	}
	if w.armed.Load() == 0 {
		return nil, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, r := range w.rules {
		if r.Conn != 0 && r.Conn != conn {
			continue
		}
		if !r.matches(m) {
			continue
		}
		r.seen++
		if r.seen < r.N {
			continue
		}
		w.rules = append(w.rules[:i:i], w.rules[i+1:]...)
		w.armed.Store(int32(len(w.rules)))
		sql := m.sql
		if sql == "" {
			sql = string(m.sqlb)
		}
		w.fired = append(w.fired, WireFiring{Rule: r.WireRule, Conn: conn, Message: m.name, SQL: sql})
		rule := r.WireRule
		return &rule, w.release
	}
	return nil, nil
}

// setFiredErr records the error a firing returned to the client.
func (w *Wire) setFiredErr(conn uint64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.fired) - 1; i >= 0; i-- {
		if w.fired[i].Conn == conn {
			w.fired[i].Err = err
			return
		}
	}
}

const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	maxWireMessageLen = 1 << 30
)

// wireConn is the net.Conn a Wire hands to pgconn.
type wireConn struct {
	cutConn
	w  *Wire
	id uint64

	wmu           sync.Mutex // serialises Write and the decoder state below
	buf           []byte     // held-back bytes of an incomplete message
	started       bool       // the startup message has been written
	opaque        bool       // the stream cannot be decoded (e.g. TLS after SSLRequest): pass through
	executed      bool       // an Execute was sent since the last Sync
	commitStmts   map[string]struct{}
	commitPortals map[string]struct{}
}

// answered reports whether the server answers m at once: a Query, a Sync, a
// Flush or the startup message make it send (and flush) its reply; after
// any other message it waits for more.
func (m wireMsg) answered() bool {
	return m.typ == 'Q' || m.typ == 'S' || m.typ == 'H' || m.name == WireStartup
}

// frame returns the length of the first message in b, or 0 when b holds only
// part of it; it sets c.opaque when b cannot be a frontend message.
func (c *wireConn) frame(b []byte) int {
	n, opaque := frontendFrame(b, c.started)
	c.opaque = c.opaque || opaque
	return n
}

// frontendFrame returns the length of the first frontend message in b — the
// startup packet (no type byte) until started — or 0 when b holds only part
// of it; opaque reports that b cannot be a frontend message at all.
func frontendFrame(b []byte, started bool) (n int, opaque bool) {
	if !started {
		if len(b) < 4 {
			return 0, false
		}
		n := int(binary.BigEndian.Uint32(b))
		if n < 8 || n > 10000 {
			return 0, true
		}
		if len(b) < n {
			return 0, false
		}
		return n, false
	}
	if len(b) < 5 {
		return 0, false
	}
	n = int(binary.BigEndian.Uint32(b[1:]))
	if n < 4 || n > maxWireMessageLen || wireTypeNames[b[0]] == "" {
		return 0, true
	}
	if len(b) < n+1 {
		return 0, false
	}
	return n + 1, false
}

// decode classifies one complete message and updates the statement and
// portal bookkeeping that recognises an extended-protocol COMMIT.
func (c *wireConn) decode(msg []byte) wireMsg {
	if !c.started {
		code := binary.BigEndian.Uint32(msg[4:])
		switch {
		case code>>16 == 3:
			c.started = true
		case code == sslRequestCode || code == gssEncRequestCode:
			c.opaque = true // the stream turns encrypted
		}
		return wireMsg{name: WireStartup}
	}
	m := wireMsg{typ: msg[0], name: wireTypeNames[msg[0]]}
	body := msg[5:]
	switch msg[0] {
	case 'S':
		m.request = c.executed
		c.executed = false
	case 'Q':
		m.request = true
		if q, _, ok := cstring(body); ok {
			m.sqlb = q
			m.commit = isCommitSQL(q)
		}
	case 'P':
		name, rest, ok := cstring(body)
		if !ok {
			break
		}
		q, _, ok := cstring(rest)
		if !ok {
			break
		}
		m.sqlb = q
		if isCommitSQL(q) {
			if c.commitStmts == nil {
				c.commitStmts = map[string]struct{}{}
			}
			c.commitStmts[string(name)] = struct{}{}
		} else if len(c.commitStmts) > 0 {
			delete(c.commitStmts, string(name))
		}
	case 'B':
		if len(c.commitStmts) == 0 && len(c.commitPortals) == 0 {
			break
		}
		portal, rest, ok := cstring(body)
		if !ok {
			break
		}
		stmt, _, ok := cstring(rest)
		if !ok {
			break
		}
		if _, isCommit := c.commitStmts[string(stmt)]; isCommit {
			if c.commitPortals == nil {
				c.commitPortals = map[string]struct{}{}
			}
			c.commitPortals[string(portal)] = struct{}{}
		} else {
			delete(c.commitPortals, string(portal))
		}
	case 'E':
		c.executed = true
		if len(c.commitPortals) == 0 {
			break
		}
		var e pgproto3.Execute
		if e.Decode(body) == nil {
			if _, ok := c.commitPortals[e.Portal]; ok {
				m.commit = true
				m.sql = "COMMIT"
			}
		}
	case 'C':
		var cl pgproto3.Close
		if cl.Decode(body) == nil {
			if cl.ObjectType == 'S' {
				delete(c.commitStmts, cl.Name)
			} else {
				delete(c.commitPortals, cl.Name)
			}
		}
	}
	return m
}

// cstring splits the NUL-terminated string off the front of b.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// isCommitSQL reports whether the last statement of sql is COMMIT or END
// (optionally followed by WORK or TRANSACTION). It does not allocate.
func isCommitSQL[T string | []byte](sql T) bool {
	end := len(sql)
	for end > 0 && (isSpace(sql[end-1]) || sql[end-1] == ';') {
		end--
	}
	start := end
	for start > 0 && sql[start-1] != ';' {
		start--
	}
	var words [2][2]int
	n := 0
	for i := start; i < end; {
		for i < end && isSpace(sql[i]) {
			i++
		}
		if i == end {
			break
		}
		j := i
		for j < end && !isSpace(sql[j]) {
			j++
		}
		if n == len(words) {
			return false
		}
		words[n] = [2]int{i, j}
		n++
		i = j
	}
	is := func(w [2]int, lit string) bool {
		if w[1]-w[0] != len(lit) {
			return false
		}
		for k := range len(lit) {
			if c := sql[w[0]+k]; c|0x20 != lit[k] {
				return false
			}
		}
		return true
	}
	switch {
	case n == 0 || !is(words[0], "commit") && !is(words[0], "end"):
		return false
	case n == 1:
		return true
	default:
		return is(words[1], "work") || is(words[1], "transaction")
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// Write decodes the messages in p and forwards them, acting on the message a
// rule targets. Bytes of a message not yet complete are held back (and
// reported as written) until the rest arrives: the server cannot act on a
// partial message anyway.
func (c *wireConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.cut.Load() {
		return 0, fmt.Errorf("faults: wire: write: %w", ErrWireCut)
	}
	if c.opaque && len(c.buf) == 0 {
		return c.Conn.Write(p)
	}
	held := len(c.buf)
	data := p
	if held > 0 {
		c.buf = append(c.buf, p...)
		data = c.buf
	}
	sent, pos := 0, 0
	// written converts bytes of data forwarded into bytes of p written.
	written := func(n int) int { return max(0, n-held) }
	for pos < len(data) && !c.opaque {
		n := c.frame(data[pos:])
		if n == 0 {
			break
		}
		end := pos + n
		msg := c.decode(data[pos:end])
		rule, release := c.w.observe(c.id, msg)
		if rule == nil {
			pos = end
			continue
		}
		switch rule.Action {
		case WireCutBefore:
			m, err := c.Conn.Write(data[sent:pos])
			if err != nil {
				return written(sent + m), err
			}
			c.cutNow()
			err = fmt.Errorf("faults: wire: write %s: %w", rule, ErrWireCut)
			c.w.setFiredErr(c.id, err)
			return written(pos), err
		case WireCutAfter:
			m, err := c.cutAfter(data[sent:end], msg.answered())
			c.buf = c.buf[:0]
			if err != nil {
				return written(sent + m), err
			}
			if end < len(data) { // the messages after it are lost
				err = fmt.Errorf("faults: wire: write after %s: %w", rule, ErrWireCut)
				c.w.setFiredErr(c.id, err)
				return written(end), err
			}
			return len(p), nil
		case WireStall, WireDelay:
			m, err := c.Conn.Write(data[sent:pos])
			if err != nil {
				return written(sent + m), err
			}
			sent = pos
			d := time.Duration(-1) // a stall: until released
			if rule.Action == WireDelay {
				d = rule.Delay
			}
			if err := c.wait(release, d); err != nil {
				// Part of the client's write is lost: the stream cannot go on.
				c.buf = c.buf[:0]
				c.cutNow()
				err = fmt.Errorf("faults: wire: write %s: %w", rule, err)
				c.w.setFiredErr(c.id, err)
				return written(sent), err
			}
		}
		pos = end
	}
	if c.opaque {
		pos = len(data)
	}
	if m, err := c.Conn.Write(data[sent:pos]); err != nil {
		return written(sent + m), err
	}
	if pos < len(data) {
		c.buf = append(c.buf[:0], data[pos:]...)
	} else {
		c.buf = c.buf[:0]
	}
	return len(p), nil
}
