package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// checkSessions is the session-state check of a database/sql worker: every connection idle
// in its pool must carry no session state a fresh connection does not (a SET without LOCAL,
// an advisory lock, a temporary table, a LISTEN, a prepared statement): the next operation
// would inherit it. fresh is the state of a fresh connection (baseline). It runs between
// operations, with no fault armed. (A pgx worker's pool is not checked.)
func (w *worker) checkSessions(ctx context.Context, fresh leakcheck.Session) []problem {
	if w.db == nil {
		return nil
	}
	w.arm(nil)
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range w.db.Stats().Idle {
		c, err := w.db.Conn(ctx)
		if err != nil {
			break // none left to check (or the server is restarting): nothing carries state
		}
		conns = append(conns, c)
	}
	var out []problem
	for _, c := range conns {
		s, err := leakcheck.SnapshotSession(ctx, c)
		if err != nil {
			// A connection that cannot answer (server chaos broke it) carries nothing into
			// the next operation: database/sql discards it.
			continue
		}
		before := fresh
		before.PID, before.BackendStart = s.PID, s.BackendStart
		if d := before.Diff(s); len(d) > 0 {
			out = append(out, problem{string(leakcheck.CheckSession), fmt.Sprintf("a pooled connection (backend %d) carries session state into the next operation: %s", s.PID, strings.Join(d, "; "))})
		}
	}
	return out
}

// freshSession returns the session state of a fresh connection of db: what every pooled
// connection may carry.
func freshSession(ctx context.Context, db *sql.DB) (leakcheck.Session, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return leakcheck.Session{}, fmt.Errorf("chaos: session baseline: %w", err)
	}
	defer c.Close()
	s, err := leakcheck.SnapshotSession(ctx, c)
	if err != nil {
		return leakcheck.Session{}, fmt.Errorf("chaos: session baseline: %w", err)
	}
	return s, nil
}
