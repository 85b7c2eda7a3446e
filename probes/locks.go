package probes

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// lockWait is one backend of a run waiting for a lock, and one backend
// holding it.
type lockWait struct {
	pid       int
	query     string // what the waiting backend runs
	holderPID int
	holderApp string // the holder's application_name
	state     string // the holder's state, e.g. "idle in transaction"
	holderQ   string // the holder's last query
	xactAge   string // how long the holder's transaction has been open
}

// lockWaitsQuery lists the backends of one application_name waiting for a
// lock, each with every backend blocking it (pg_blocking_pids).
const lockWaitsQuery = `SELECT a.pid, left(regexp_replace(coalesce(a.query, ''), '\s+', ' ', 'g'), 200),
  b.pid, coalesce(b.application_name, ''), coalesce(b.state, ''),
  left(regexp_replace(coalesce(b.query, ''), '\s+', ' ', 'g'), 200),
  coalesce(to_char(now() - b.xact_start, 'FMSS.MS"s"'), '')
FROM pg_stat_activity a
JOIN LATERAL unnest(pg_blocking_pids(a.pid)) AS h(pid) ON true
JOIN pg_stat_activity b ON b.pid = h.pid
WHERE a.application_name = $1 AND a.wait_event_type = 'Lock'
ORDER BY a.pid, b.pid`

// lockWaits returns what the backends of app wait for now, on admin.
func lockWaits(ctx context.Context, admin *sql.DB, app string) ([]lockWait, error) {
	rows, err := admin.QueryContext(ctx, lockWaitsQuery, app)
	if err != nil {
		return nil, fmt.Errorf("probes: read lock waits of %s: %w", app, err)
	}
	defer rows.Close()
	var out []lockWait
	for rows.Next() {
		var w lockWait
		if err := rows.Scan(&w.pid, &w.query, &w.holderPID, &w.holderApp, &w.state, &w.holderQ, &w.xactAge); err != nil {
			return nil, fmt.Errorf("probes: read lock waits of %s: %w", app, err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("probes: read lock waits of %s: %w", app, err)
	}
	return out, nil
}

// String describes the wait in one line.
func (w lockWait) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "backend %d waited for a lock (running `%s`) held by backend %d (application_name %q, %s", w.pid, w.query, w.holderPID, w.holderApp, w.state)
	if w.xactAge != "" {
		fmt.Fprintf(&b, ", transaction open %s", w.xactAge)
	}
	fmt.Fprintf(&b, ", last query `%s`)", w.holderQ)
	return b.String()
}
