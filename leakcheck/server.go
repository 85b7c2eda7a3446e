package leakcheck

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// serverQuery reads, in one round trip, every backend of one
// application_name (but the caller's own) with the locks it holds, and every
// prepared transaction on the server. The locks every transaction holds on
// itself (virtualxid, transactionid) are left out.
const serverQuery = `SELECT
  coalesce((SELECT json_agg(json_build_object(
      'pid', a.pid,
      'state', coalesce(a.state, ''),
      'query', coalesce(a.query, ''),
      'database', coalesce(a.datname, ''),
      'xact_ms', coalesce(extract(epoch FROM now() - a.xact_start) * 1000, -1),
      'state_ms', coalesce(extract(epoch FROM now() - a.state_change) * 1000, -1),
      'locks', coalesce((SELECT json_agg(json_build_object(
          'type', l.locktype, 'mode', l.mode, 'granted', l.granted,
          'relation', coalesce(l.relation::text, ''),
          'classid', coalesce(l.classid::bigint, 0), 'objid', coalesce(l.objid::bigint, 0),
          'objsubid', coalesce(l.objsubid, 0)) ORDER BY l.locktype, l.mode)
        FROM pg_locks l WHERE l.pid = a.pid AND l.locktype NOT IN ('virtualxid', 'transactionid')), '[]'::json)
    ) ORDER BY a.pid)
    FROM pg_stat_activity a WHERE a.application_name = $1 AND a.pid <> pg_backend_pid()), '[]'::json),
  coalesce((SELECT json_agg(json_build_object(
      'gid', p.gid, 'database', p.database, 'owner', p.owner,
      'age_ms', extract(epoch FROM now() - p.prepared) * 1000) ORDER BY p.prepared)
    FROM pg_prepared_xacts p), '[]'::json)`

type backend struct {
	PID      int      `json:"pid"`
	State    string   `json:"state"`
	Query    string   `json:"query"`
	Database string   `json:"database"`
	XactMS   float64  `json:"xact_ms"`
	StateMS  float64  `json:"state_ms"`
	Locks    []pgLock `json:"locks"`
}

type pgLock struct {
	Type     string `json:"type"`
	Mode     string `json:"mode"`
	Granted  bool   `json:"granted"`
	Relation string `json:"relation"`
	ClassID  int64  `json:"classid"`
	ObjID    int64  `json:"objid"`
	ObjSubID int    `json:"objsubid"`
}

func (l pgLock) String() string {
	var what string
	switch l.Type {
	case "advisory":
		if l.ObjSubID == 1 {
			what = fmt.Sprintf("advisory lock %d", l.ClassID<<32|l.ObjID)
		} else {
			what = fmt.Sprintf("advisory lock (%d, %d)", l.ClassID, l.ObjID)
		}
	case "relation":
		what = "relation oid " + l.Relation
	default:
		what = l.Type
		if l.Relation != "" {
			what += " on relation oid " + l.Relation
		}
	}
	s := l.Mode + " on " + what
	if !l.Granted {
		s += ", waiting"
	}
	return s
}

type preparedXact struct {
	GID      string  `json:"gid"`
	Database string  `json:"database"`
	Owner    string  `json:"owner"`
	AgeMS    float64 `json:"age_ms"`
}

// FindServer checks, through admin (a superuser pool on the same PostgreSQL
// server, with a different application_name), that no backend named appName
// is "idle in transaction", "idle in transaction (aborted)" or still
// "active", or holds a lock (an idle one holding a lock holds a session-level
// advisory lock), and that no prepared transaction is left on the server. It
// polls to the deadline set by WithTimeout: a backend can stay "active" for
// a moment after the client has its answer. With WithLongTransaction it also
// reports a backend whose transaction is older than the threshold. Other
// options are ignored.
//
// Prepared transactions are server-wide (pg_prepared_xacts names no
// application): any one is reported.
func FindServer(ctx context.Context, admin *sql.DB, appName string, opts ...Option) error {
	c, err := buildConfig(append(opts, WithServer(admin, appName)))
	if err != nil {
		return err
	}
	f, err := checkServer(ctx, c.admin, c.appName, c.longTx, time.Now().Add(c.timeout))
	return result(f, errList(err))
}

// VerifyServer reports the findings of FindServer through t.
func VerifyServer(t TestingT, admin *sql.DB, appName string, opts ...Option) {
	t.Helper()
	if err := FindServer(context.Background(), admin, appName, opts...); err != nil {
		t.Errorf("%v", err)
	}
}

func checkServer(ctx context.Context, admin *sql.DB, appName string, longTx time.Duration, deadline time.Time) ([]Finding, error) {
	var findings []Finding
	var qerr error
	poll(ctx, deadline, func() bool {
		var backends []backend
		var prepared []preparedXact
		backends, prepared, qerr = readServer(ctx, admin, appName)
		if qerr != nil {
			return true
		}
		findings = serverFindings(appName, backends, prepared, longTx)
		return len(findings) == 0
	})
	if qerr != nil {
		return nil, fmt.Errorf("leakcheck: server check of application_name %q: %w", appName, qerr)
	}
	return findings, nil
}

func readServer(ctx context.Context, admin *sql.DB, appName string) ([]backend, []preparedXact, error) {
	var bj, pj []byte
	if err := admin.QueryRowContext(ctx, serverQuery, appName).Scan(&bj, &pj); err != nil {
		return nil, nil, err
	}
	var backends []backend
	var prepared []preparedXact
	if err := json.Unmarshal(bj, &backends); err != nil {
		return nil, nil, fmt.Errorf("decode pg_stat_activity: %w", err)
	}
	if err := json.Unmarshal(pj, &prepared); err != nil {
		return nil, nil, fmt.Errorf("decode pg_prepared_xacts: %w", err)
	}
	return backends, prepared, nil
}

func serverFindings(appName string, backends []backend, prepared []preparedXact, longTx time.Duration) []Finding {
	var out []Finding
	for _, b := range backends {
		var why string
		switch b.State {
		case "idle":
			if len(b.Locks) == 0 {
				continue
			}
			why = "is idle but still holds " + plural(len(b.Locks), "lock") + " (a session-level lock outlives every transaction: release it)"
		case "idle in transaction":
			why = "is idle in transaction: a transaction was begun and never committed or rolled back"
		case "idle in transaction (aborted)":
			why = "is idle in an aborted transaction: a statement failed and the transaction was never rolled back"
		case "active":
			why = "is still active after the operation returned: a query outlived its caller"
		case "":
			continue // a backend of another user, invisible without privileges
		default:
			why = "is " + b.State
		}
		var d strings.Builder
		fmt.Fprintf(&d, "    last query: %s\n", shortSQL(b.Query))
		if b.XactMS >= 0 {
			fmt.Fprintf(&d, "    transaction open for %v", msDur(b.XactMS))
			if longTx > 0 && msDur(b.XactMS) > longTx {
				fmt.Fprintf(&d, " (longer than %v)", longTx)
			}
			d.WriteByte('\n')
		}
		fmt.Fprintf(&d, "    in this state for %v\n", msDur(b.StateMS))
		for _, l := range b.Locks {
			fmt.Fprintf(&d, "    holds %s\n", l)
		}
		out = append(out, Finding{
			Check:   CheckServer,
			Summary: fmt.Sprintf("backend %d (application_name %q, database %q) %s", b.PID, appName, b.Database, why),
			Detail:  d.String(),
		})
	}
	if longTx > 0 {
		for _, b := range backends {
			if b.State == "active" && b.XactMS >= 0 && msDur(b.XactMS) > longTx {
				out = append(out, Finding{
					Check:   CheckLongTx,
					Summary: fmt.Sprintf("backend %d (application_name %q) has had a transaction open for %v (threshold %v)", b.PID, appName, msDur(b.XactMS), longTx),
					Detail:  "    last query: " + shortSQL(b.Query),
				})
			}
		}
	}
	for _, p := range prepared {
		out = append(out, Finding{
			Check: CheckPreparedTxn,
			Summary: fmt.Sprintf("prepared transaction %q (database %q, owner %q) left behind %v ago: finish it with COMMIT PREPARED or ROLLBACK PREPARED",
				p.GID, p.Database, p.Owner, msDur(p.AgeMS)),
		})
	}
	return out
}

func msDur(ms float64) time.Duration {
	return (time.Duration(ms * float64(time.Millisecond))).Round(time.Millisecond)
}
