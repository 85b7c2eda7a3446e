package leakcheck

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// longestKept bounds how many ended transactions a Tracker remembers for the
// long-transaction check: the longest ones.
const longestKept = 8

// maxAcross bounds how many transactions held across external calls a
// Tracker keeps until Reset.
const maxAcross = 64

// Tracker records where each connection was taken into use, each
// transaction begun and each rows opened, for the connectors it wraps, and
// which transactions were held across a call marked external. It costs one
// stack capture (runtime.Callers, 40 frames, no symbol lookup) per
// connection checkout, transaction, statement and rows; frames are resolved
// only when a report is built. A Tracker is safe for concurrent use.
//
// A connection counts as acquired when it is opened or reset for reuse
// (driver.SessionResetter, which pgx has), or, for drivers without
// SessionResetter (sqlmock), at its first statement after it was last seen
// idle; it counts as given back when the driver reports it valid on return
// (driver.Validator) or when the idle probe of a leak report finds it idle.
type Tracker struct {
	mu     sync.Mutex
	pools  int
	conns  map[connKey]*connInfo
	ended  []txEnded // the longest ended transactions, at most longestKept
	across []Finding // transactions held across external calls
}

type connKey struct {
	pool int
	id   uint64
}

type connInfo struct {
	key        connKey
	inUse      bool
	acquired   *site
	acquiredAt time.Time
	last       *site // the last statement, transaction or prepare
	tx         *txInfo
	rows       []*rowsInfo
}

type txInfo struct {
	site  *site
	begun time.Time
	conn  connKey
}

type rowsInfo struct {
	sql    string
	site   *site
	opened time.Time
}

type txEnded struct {
	site *site
	took time.Duration
	how  string
}

// NewTracker returns an empty Tracker. Wrap a connector with it before
// opening the pool: sql.OpenDB(tracker.WrapConnector(connector)).
func NewTracker() *Tracker {
	return &Tracker{conns: make(map[connKey]*connInfo)}
}

// WrapConnector returns c wrapped so that t records its connections,
// transactions and rows. It stacks with other drvwrap-based wrappers
// (faults) in either order.
func (t *Tracker) WrapConnector(c driver.Connector) driver.Connector {
	return drvwrap.WrapConnector(c, t.hooks())
}

// WrapDriver is WrapConnector for a driver.Driver.
func (t *Tracker) WrapDriver(d driver.Driver) driver.Driver {
	return drvwrap.WrapDriver(d, t.hooks())
}

func (t *Tracker) hooks() drvwrap.Hooks {
	t.mu.Lock()
	t.pools++
	pool := t.pools
	t.mu.Unlock()
	return drvwrap.Hooks{
		Before: func(ctx context.Context, c *drvwrap.Call) error {
			switch c.Op {
			case drvwrap.OpCommit, drvwrap.OpRollback:
				// database/sql forgets the transaction whatever the outcome.
				t.endTx(connKey{pool, c.ConnID}, c.Op)
			}
			return nil
		},
		After: func(ctx context.Context, c *drvwrap.Call, err error) error {
			switch c.Op {
			case drvwrap.OpRowsNext, drvwrap.OpCommit, drvwrap.OpRollback:
				// the hot path: nothing to record
			case drvwrap.OpConnect, drvwrap.OpResetSession, drvwrap.OpPing:
				if ctx.Value(probeKey{}) != nil {
					t.markIdle(connKey{pool, c.ConnID})
					return err
				}
				if c.Op != drvwrap.OpPing {
					t.record(connKey{pool, c.ConnID}, c, err)
				}
			default:
				t.record(connKey{pool, c.ConnID}, c, err)
			}
			return err
		},
	}
}

// record notes one driver call; it runs in the caller's goroutine, so the
// stack it captures leads back to the caller's code.
func (t *Tracker) record(k connKey, c *drvwrap.Call, err error) {
	if c.Op == drvwrap.OpConnect && err != nil {
		return // no connection
	}
	var s *site
	switch c.Op {
	case drvwrap.OpConnect, drvwrap.OpResetSession, drvwrap.OpBegin, drvwrap.OpQuery,
		drvwrap.OpPrepare, drvwrap.OpStmtQuery:
		if err == nil {
			s = capture(2)
		}
	case drvwrap.OpExec, drvwrap.OpStmtExec:
		s = capture(2) // a failed statement is still the connection's last use
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	ci := t.conns[k]
	if ci == nil {
		if c.Op == drvwrap.OpClose || c.Op == drvwrap.OpIsValid {
			return
		}
		ci = &connInfo{key: k}
		t.conns[k] = ci
	}
	switch c.Op {
	case drvwrap.OpConnect:
		if !s.background() {
			ci.inUse, ci.acquired, ci.acquiredAt = true, s, now
		}
	case drvwrap.OpResetSession:
		// A connection database/sql resets for reuse holds no transaction
		// and no rows, whatever the tracker saw (a wrapper above it may have
		// answered a commit without passing it down).
		ci.tx, ci.rows = nil, nil
		if err == nil {
			ci.inUse, ci.acquired, ci.acquiredAt, ci.last = true, s, now, nil
		}
	case drvwrap.OpIsValid:
		ci.inUse, ci.tx, ci.rows = false, nil, nil
	case drvwrap.OpClose:
		delete(t.conns, k)
	case drvwrap.OpRowsClose:
		for i, r := range ci.rows {
			if r.sql == c.SQL {
				ci.rows = slices.Delete(ci.rows, i, i+1)
				break
			}
		}
	default:
		if s == nil {
			return
		}
		ci.last = s
		if !ci.inUse {
			ci.inUse, ci.acquired, ci.acquiredAt = true, s, now
		}
		if err != nil {
			return
		}
		switch c.Op {
		case drvwrap.OpBegin:
			ci.tx = &txInfo{site: s, begun: now, conn: k}
		case drvwrap.OpQuery, drvwrap.OpStmtQuery:
			ci.rows = append(ci.rows, &rowsInfo{sql: c.SQL, site: s, opened: now})
		}
	}
}

// probeKey marks the context of the tracker's own probe of idle connections.
type probeKey struct{}

// markIdle notes that a connection sits idle in the pool: the probe took it.
func (t *Tracker) markIdle(k connKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ci := t.conns[k]; ci != nil {
		ci.inUse, ci.tx, ci.rows = false, nil, nil
	}
}

// probeIdle learns which connections of db are idle — database/sql never
// tells the driver when a connection goes back to the pool — by taking
// every idle connection for a moment and pinging it with a marked context:
// the hooks then mark it idle. What stays marked in use is held by someone.
// It runs only when a pool check has already found a leak.
func (t *Tracker) probeIdle(ctx context.Context, db *sql.DB) {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, probeKey{}, true), 100*time.Millisecond)
	defer cancel()
	var taken []*sql.Conn
	defer func() {
		for _, c := range taken {
			_ = c.Close()
		}
	}()
	for range db.Stats().Idle {
		c, err := db.Conn(ctx)
		if err != nil {
			return
		}
		taken = append(taken, c)
		_ = c.Raw(func(dc any) error {
			if p, ok := dc.(driver.Pinger); ok {
				return p.Ping(ctx)
			}
			return nil
		})
	}
}

func (t *Tracker) endTx(k connKey, op drvwrap.Op) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	ci := t.conns[k]
	if ci == nil || ci.tx == nil {
		return
	}
	e := txEnded{site: ci.tx.site, took: now.Sub(ci.tx.begun), how: op.String()}
	ci.tx = nil
	// keep the longest few
	if len(t.ended) < longestKept {
		t.ended = append(t.ended, e)
		return
	}
	shortest := 0
	for i := range t.ended {
		if t.ended[i].took < t.ended[shortest].took {
			shortest = i
		}
	}
	if e.took > t.ended[shortest].took {
		t.ended[shortest] = e
	}
}

// External runs fn, a call to something outside the database (an LLM, an
// HTTP service, a message queue), and records a long-transaction finding for
// every transaction of the tracked pools that was open when fn started and
// is still open when it returns: a transaction held across an external call
// keeps its locks and its connection for as long as the call takes. It
// returns fn's error.
//
// The tracker cannot tell whose transaction it is: with several goroutines
// using the same tracked pool, a transaction of another goroutine that spans
// the whole call is reported too. Use a tracker per unit under test.
func (t *Tracker) External(ctx context.Context, name string, fn func(context.Context) error) error {
	call := capture(1)
	started := time.Now()
	t.mu.Lock()
	var open []*txInfo
	for _, ci := range t.conns {
		if ci.tx != nil {
			open = append(open, ci.tx)
		}
	}
	t.mu.Unlock()
	err := fn(ctx)
	if len(open) == 0 {
		return err
	}
	took := time.Since(started)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tx := range open {
		ci := t.conns[tx.conn]
		if ci == nil || ci.tx != tx || len(t.across) >= maxAcross {
			continue
		}
		t.across = append(t.across, Finding{
			Check: CheckLongTx,
			Summary: fmt.Sprintf("a transaction was held across the external call %q (%v): no transaction may stay open while the code waits on something outside the database",
				name, took.Round(time.Millisecond)),
			Detail: "    transaction begun by " + siteLines(tx.site, "        ") +
				"\n    external call made by " + siteLines(call, "        "),
		})
	}
	return err
}

// Reset forgets the findings and ended transactions recorded so far (not the
// connections, transactions and rows still open).
func (t *Tracker) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended, t.across = nil, nil
}

// Report describes what is still held in db, a pool opened on a connector
// t wraps — each connection in use, with where it was acquired and the
// transaction and rows it holds — or "" when nothing is. To tell the
// connections in use from the idle ones it briefly takes and pings every
// idle connection of db.
func (t *Tracker) Report(ctx context.Context, db *sql.DB) string {
	t.probeIdle(ctx, db)
	return t.heldReport()
}

func (t *Tracker) heldReport() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	var b strings.Builder
	held := 0
	for _, ci := range t.sortedConns() {
		if ci.tx == nil && len(ci.rows) == 0 && !ci.inUse {
			continue
		}
		held++
		t.writeConn(&b, ci, now)
	}
	if held == 0 {
		return ""
	}
	return strings.TrimRight(b.String(), "\n")
}

func (t *Tracker) writeConn(b *strings.Builder, ci *connInfo, now time.Time) {
	switch {
	case ci.acquired != nil:
		fmt.Fprintf(b, "    connection %s acquired %v ago by %s\n", connName(ci.key), now.Sub(ci.acquiredAt).Round(time.Millisecond), siteLines(ci.acquired, "        "))
	default:
		fmt.Fprintf(b, "    connection %s (where it was acquired was not seen)\n", connName(ci.key))
	}
	where := func(s *site) string {
		if ci.acquired != nil && s.String() == ci.acquired.String() {
			return "there"
		}
		return "by " + siteLines(s, "          ")
	}
	if tx := ci.tx; tx != nil {
		fmt.Fprintf(b, "      holding a transaction begun %v ago %s\n", now.Sub(tx.begun).Round(time.Millisecond), where(tx.site))
	}
	for _, r := range ci.rows {
		fmt.Fprintf(b, "      holding rows of `%s` opened %v ago %s\n", shortSQL(r.sql), now.Sub(r.opened).Round(time.Millisecond), where(r.site))
	}
	if ci.tx == nil && len(ci.rows) == 0 && ci.last != nil && ci.last != ci.acquired {
		fmt.Fprintf(b, "      last used by %s\n", ci.last)
	}
}

func connName(k connKey) string {
	if k.pool == 1 {
		return fmt.Sprintf("#%d", k.id)
	}
	return fmt.Sprintf("#%d of pool %d", k.id, k.pool)
}

// siteLines is the first frame of the caller's code, then up to three
// callers, one per line.
func siteLines(s *site, pad string) string {
	f := s.frames(4)
	if len(f) == 0 {
		return "an unknown caller"
	}
	out := f[0]
	for _, c := range f[1:] {
		out += "\n" + pad + "called from " + c
	}
	return out
}

// findings returns the long-transaction findings: transactions held across
// external calls, and, with a threshold, transactions that stayed open
// longer than it (ended ones and ones still open).
func (t *Tracker) findings(threshold time.Duration) []Finding {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.across)
	if threshold <= 0 {
		return out
	}
	now := time.Now()
	for _, e := range t.ended {
		if e.took > threshold {
			out = append(out, Finding{
				Check:   CheckLongTx,
				Summary: fmt.Sprintf("a transaction stayed open %v (threshold %v) before its %s", e.took.Round(time.Millisecond), threshold, e.how),
				Detail:  "    begun by " + siteLines(e.site, "        "),
			})
		}
	}
	for _, ci := range t.sortedConns() {
		if ci.tx != nil && now.Sub(ci.tx.begun) > threshold {
			out = append(out, Finding{
				Check:   CheckLongTx,
				Summary: fmt.Sprintf("a transaction has been open %v (threshold %v) and is still open", now.Sub(ci.tx.begun).Round(time.Millisecond), threshold),
				Detail:  "    begun by " + siteLines(ci.tx.site, "        "),
			})
		}
	}
	return out
}

// hasOpenTxOver reports whether a transaction the tracker believes open has
// been open longer than threshold.
func (t *Tracker) hasOpenTxOver(threshold time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for _, ci := range t.conns {
		if ci.tx != nil && now.Sub(ci.tx.begun) > threshold {
			return true
		}
	}
	return false
}

// sortedConns returns the connections by pool and id; t.mu must be held.
func (t *Tracker) sortedConns() []*connInfo {
	out := make([]*connInfo, 0, len(t.conns))
	for _, ci := range t.conns {
		out = append(out, ci)
	}
	slices.SortFunc(out, func(a, b *connInfo) int {
		if a.key.pool != b.key.pool {
			return a.key.pool - b.key.pool
		}
		return int(a.key.id) - int(b.key.id)
	})
	return out
}

// FindLongTransactions returns the long-transaction findings of t: every
// transaction held across a call marked with External, and with
// WithLongTransaction every transaction open longer than the threshold.
func FindLongTransactions(ctx context.Context, t *Tracker, opts ...Option) error {
	_ = ctx
	c, err := buildConfig(opts)
	if err != nil {
		return err
	}
	if t == nil {
		return fmt.Errorf("%w: FindLongTransactions with a nil tracker", ErrOption)
	}
	return result(t.findings(c.longTx), nil)
}

// VerifyLongTransactions reports the findings of FindLongTransactions through tb.
func VerifyLongTransactions(tb TestingT, t *Tracker, opts ...Option) {
	tb.Helper()
	if err := FindLongTransactions(context.Background(), t, opts...); err != nil {
		tb.Errorf("%v", err)
	}
}
