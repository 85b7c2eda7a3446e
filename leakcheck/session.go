package leakcheck

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Querier is what SnapshotSession runs its query on: a *sql.Conn (one
// connection, held), or a *sql.DB limited to one connection
// (db.SetMaxOpenConns(1)), so that every use of the pool lands on the same
// session.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Session is the state a PostgreSQL session carries from one user of a
// pooled connection to the next.
type Session struct {
	PID                int      // the backend
	BackendStart       string   // with PID, identifies the session
	Settings           []string // "name=value" of every setting changed in the session (pg_settings.source = 'session')
	AdvisoryLocks      []string // advisory locks held ("key mode")
	TempTables         []string // relations in the session's temporary schema
	Channels           []string // channels it LISTENs on
	PreparedStatements []string // server-side prepared statements ("name: statement"), except pgx's statement cache
}

// sessionQuery reads the whole session state in one round trip. pgx's
// automatic statement cache (names "stmtcache_...") is left out: it is the
// driver's, not the code's, and it is the same for every user.
const sessionQuery = `SELECT pg_backend_pid(),
  coalesce((SELECT backend_start::text FROM pg_stat_get_activity(pg_backend_pid())), ''),
  coalesce((SELECT json_agg(name || '=' || current_setting(name) ORDER BY name) FROM pg_settings WHERE source = 'session'), '[]'::json),
  coalesce((SELECT json_agg(k ORDER BY k) FROM (
      SELECT CASE WHEN objsubid = 1 THEN ((classid::bigint << 32) | objid::bigint)::text
                  ELSE '(' || classid::text || ', ' || objid::text || ')' END || ' ' || mode AS k
      FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted) x), '[]'::json),
  coalesce((SELECT json_agg(relname::text ORDER BY relname) FROM pg_class
      WHERE relnamespace = pg_my_temp_schema() AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f')), '[]'::json),
  coalesce((SELECT json_agg(c ORDER BY c) FROM pg_listening_channels() c), '[]'::json),
  coalesce((SELECT json_agg(name || ': ' || statement ORDER BY name) FROM pg_prepared_statements
      WHERE name NOT LIKE 'stmtcache\_%'), '[]'::json)`

// SnapshotSession reads the session state of the connection behind q. A
// *sql.DB must be limited to one connection: on a larger pool two snapshots
// could read two different sessions.
func SnapshotSession(ctx context.Context, q Querier) (Session, error) {
	if db, ok := q.(*sql.DB); ok {
		if n := db.Stats().MaxOpenConnections; n != 1 {
			return Session{}, fmt.Errorf("%w: session snapshot on a pool of up to %d connections (0 = unlimited); call db.SetMaxOpenConns(1) or snapshot a *sql.Conn", ErrOption, n)
		}
	}
	var s Session
	var settings, locks, temps, channels, prepared []byte
	err := q.QueryRowContext(ctx, sessionQuery).Scan(&s.PID, &s.BackendStart, &settings, &locks, &temps, &channels, &prepared)
	if err != nil {
		return Session{}, fmt.Errorf("leakcheck: session snapshot: %w", err)
	}
	for _, f := range []struct {
		raw []byte
		dst *[]string
	}{{settings, &s.Settings}, {locks, &s.AdvisoryLocks}, {temps, &s.TempTables}, {channels, &s.Channels}, {prepared, &s.PreparedStatements}} {
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return Session{}, fmt.Errorf("leakcheck: session snapshot: decode: %w", err)
		}
	}
	return s, nil
}

// Same reports whether s and o are snapshots of the same session (the same
// backend, started at the same time).
func (s Session) Same(o Session) bool {
	return s.PID == o.PID && s.BackendStart == o.BackendStart
}

// Diff lists what after carries that s did not: each line one thing left
// for the next user of the connection. Things that went away are not
// leaks and are not listed. It returns nil for snapshots of different
// sessions (check Same).
func (s Session) Diff(after Session) []string {
	if !s.Same(after) {
		return nil
	}
	var out []string
	was := map[string]string{}
	for _, kv := range s.Settings {
		k, v, _ := strings.Cut(kv, "=")
		was[k] = v
	}
	for _, kv := range after.Settings {
		k, v, _ := strings.Cut(kv, "=")
		old, ok := was[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("setting %s=%s set for the whole session (SET without LOCAL, or set_config(..., false))", k, v))
		case old != v:
			out = append(out, fmt.Sprintf("setting %s changed from %s to %s for the whole session", k, old, v))
		}
	}
	added := func(before, now []string, format string) {
		for _, x := range now {
			if !slices.Contains(before, x) {
				out = append(out, fmt.Sprintf(format, x))
			}
		}
	}
	added(s.AdvisoryLocks, after.AdvisoryLocks, "advisory lock %s still held (pg_advisory_lock without pg_advisory_unlock)")
	added(s.TempTables, after.TempTables, "temporary table %s left in the session")
	added(s.Channels, after.Channels, "still listening on channel %s (LISTEN without UNLISTEN)")
	added(s.PreparedStatements, after.PreparedStatements, "prepared statement %s never deallocated")
	return out
}

// FindSession takes a new snapshot of the connection behind q and reports
// everything it carries that before did not. When the session changed (the
// connection was discarded and a new one opened), what the old one carried
// went with it: nothing is reported. Options are ignored but for errors.
func FindSession(ctx context.Context, q Querier, before Session, opts ...Option) error {
	if _, err := buildConfig(opts); err != nil {
		return err
	}
	f, err := checkSession(ctx, q, before)
	return result(f, errList(err))
}

// VerifySession reports the findings of FindSession through t.
func VerifySession(t TestingT, q Querier, before Session, opts ...Option) {
	t.Helper()
	if err := FindSession(context.Background(), q, before, opts...); err != nil {
		t.Errorf("%v", err)
	}
}

func checkSession(ctx context.Context, q Querier, before Session) ([]Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	after, err := SnapshotSession(ctx, q)
	if err != nil {
		return nil, err
	}
	diff := before.Diff(after)
	if len(diff) == 0 {
		return nil, nil
	}
	return []Finding{{
		Check:   CheckSession,
		Summary: fmt.Sprintf("backend %d carries state the next user of the connection inherits: %s", after.PID, plural(len(diff), "item")),
		Detail:  indent(strings.Join(diff, "\n"), "    "),
	}}, nil
}
