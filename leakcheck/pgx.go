package leakcheck

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PgxTracker attributes what a pgxpool.Pool holds to the code that took it:
// for each connection acquired (pool.Acquire, and the acquisitions inside
// pool.Query, pool.Begin, pgx.BeginFunc ...) the caller's file:line, and the
// transaction it holds with where it began. Install it on the pool's config
// before the pool is created; pass it to WithPgxPool. It also serves
// External for the long-transaction check.
//
// It is pgx's tracer of the pool's connections (pgx.QueryTracer,
// pgxpool.AcquireTracer and pgxpool.ReleaseTracer): a tracer already set on
// the config is called too, as a pgx.QueryTracer only.
type PgxTracker struct {
	mu     sync.Mutex
	next   int
	conns  map[*pgx.Conn]*pgxConnInfo
	across []Finding
	prev   pgx.QueryTracer
}

type pgxConnInfo struct {
	id         int
	acquired   *site
	acquiredAt time.Time
	inUse      bool
	tx         *site
	txAt       time.Time
}

// NewPgxTracker returns a PgxTracker that has seen nothing.
func NewPgxTracker() *PgxTracker {
	return &PgxTracker{conns: map[*pgx.Conn]*pgxConnInfo{}}
}

// Install makes t the tracer of cfg's connections and of its acquisitions.
func (t *PgxTracker) Install(cfg *pgxpool.Config) {
	t.prev = cfg.ConnConfig.Tracer
	cfg.ConnConfig.Tracer = t
}

func (t *PgxTracker) info(c *pgx.Conn) *pgxConnInfo {
	ci := t.conns[c]
	if ci == nil {
		t.next++
		ci = &pgxConnInfo{id: t.next}
		t.conns[c] = ci
	}
	return ci
}

// TraceAcquireStart implements pgxpool.AcquireTracer.
func (t *PgxTracker) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return ctx
}

// TraceAcquireEnd implements pgxpool.AcquireTracer: it records where the
// connection was acquired.
func (t *PgxTracker) TraceAcquireEnd(_ context.Context, _ *pgxpool.Pool, data pgxpool.TraceAcquireEndData) {
	if data.Err != nil || data.Conn == nil {
		return
	}
	s := capture(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	ci := t.info(data.Conn)
	ci.acquired, ci.acquiredAt, ci.inUse = s, time.Now(), true
}

// TraceRelease implements pgxpool.ReleaseTracer.
func (t *PgxTracker) TraceRelease(_ *pgxpool.Pool, data pgxpool.TraceReleaseData) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ci := t.conns[data.Conn]; ci != nil {
		ci.inUse = false
		ci.tx = nil
	}
}

// TraceQueryStart implements pgx.QueryTracer: a BEGIN opens the
// connection's transaction, recorded with where it began.
func (t *PgxTracker) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if t.prev != nil {
		ctx = t.prev.TraceQueryStart(ctx, conn, data)
	}
	if w := firstWord(data.SQL); w == "begin" || w == "start" {
		s := capture(1)
		t.mu.Lock()
		ci := t.info(conn)
		ci.tx, ci.txAt = s, time.Now()
		t.mu.Unlock()
	}
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer: a COMMIT or ROLLBACK ends the
// connection's transaction, as does a broken connection.
func (t *PgxTracker) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if t.prev != nil {
		t.prev.TraceQueryEnd(ctx, conn, data)
	}
	w := firstWord(data.CommandTag.String())
	t.mu.Lock()
	defer t.mu.Unlock()
	ci := t.conns[conn]
	if ci == nil || ci.tx == nil {
		return
	}
	if w == "COMMIT" || w == "ROLLBACK" || conn.IsClosed() || conn.PgConn().TxStatus() == 'I' {
		ci.tx = nil
	}
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t\r\n;"); i >= 0 {
		s = s[:i]
	}
	if s == "BEGIN" || s == "COMMIT" || s == "ROLLBACK" {
		return s
	}
	return strings.ToLower(s)
}

// External runs fn, a call outside the database, and reports a
// long-transaction finding (see WithPgxPool) for each transaction of the
// pool open when fn starts and still open, the same one, when it returns.
// It returns fn's error.
func (t *PgxTracker) External(ctx context.Context, name string, fn func(context.Context) error) error {
	call := capture(1)
	started := time.Now()
	type open struct {
		ci *pgxConnInfo
		tx *site
	}
	var before []open
	t.mu.Lock()
	for _, ci := range t.conns {
		if ci.tx != nil {
			before = append(before, open{ci, ci.tx})
		}
	}
	t.mu.Unlock()
	err := fn(ctx)
	if len(before) == 0 {
		return err
	}
	took := time.Since(started)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range before {
		if o.ci.tx != o.tx || len(t.across) >= maxAcross {
			continue
		}
		t.across = append(t.across, Finding{
			Check: CheckLongTx,
			Summary: fmt.Sprintf("a transaction was held across the external call %q (%v): no transaction may stay open while the code waits on something outside the database",
				name, took.Round(time.Millisecond)),
			Detail: "    transaction begun by " + siteLines(o.tx, "        ") +
				"\n    external call made by " + siteLines(call, "        "),
		})
	}
	return err
}

// Reset forgets the long-transaction findings recorded so far (not the
// connections still held).
func (t *PgxTracker) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.across = nil
}

// Report describes each connection still acquired, with where it was
// acquired and the transaction it holds, or "" when none is.
func (t *PgxTracker) Report() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var held []*pgxConnInfo
	for _, ci := range t.conns {
		if ci.inUse {
			held = append(held, ci)
		}
	}
	sort.Slice(held, func(i, j int) bool { return held[i].id < held[j].id })
	now := time.Now()
	var b strings.Builder
	for _, ci := range held {
		fmt.Fprintf(&b, "    connection #%d acquired %v ago by %s\n", ci.id, now.Sub(ci.acquiredAt).Round(time.Millisecond), siteLines(ci.acquired, "        "))
		if ci.tx != nil {
			where := "by " + siteLines(ci.tx, "          ")
			if ci.tx.String() == ci.acquired.String() {
				where = "there"
			}
			fmt.Fprintf(&b, "      holding a transaction begun %v ago %s\n", now.Sub(ci.txAt).Round(time.Millisecond), where)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func (t *PgxTracker) findings() []Finding {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Finding(nil), t.across...)
}

// WithPgxPool enables the pool check on a pgxpool.Pool: its acquired
// connections must come back to 0 before the deadline, and each one still
// acquired is reported with where it was acquired (tr, which may be nil,
// installed on the pool's config). With tr, the transactions held across an
// External call of tr are long-transaction findings.
func WithPgxPool(pool *pgxpool.Pool, tr *PgxTracker) Option {
	return optionFunc(func(c *config) {
		if pool == nil {
			c.errs = append(c.errs, fmt.Errorf("%w: WithPgxPool(nil, ...)", ErrOption))
			return
		}
		a := acquiredSource{name: "pgxpool (its Close would wait for it forever)", fn: func() int { return int(pool.Stat().AcquiredConns()) }}
		if tr != nil {
			a.detail = func() string {
				if r := tr.Report(); r != "" {
					return r
				}
				return "    (the tracker saw no connection of this pool acquired: was it installed on the pool's config?)"
			}
			c.pgxTrackers = append(c.pgxTrackers, tr)
		}
		c.acquired = append(c.acquired, a)
	})
}
