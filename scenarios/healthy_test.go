package scenarios

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
)

// readBumpInTx is correct transactional code: the row read FOR UPDATE and
// written in one transaction, rolled back on any error.
var readBumpInTx = kvOp("ReadBumpInTx", func(ctx context.Context, db *sql.DB, key string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1 FOR UPDATE`, key).Scan(&v); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE kv SET v = $2 WHERE k = $1`, key, v+1); err != nil {
		return err
	}
	return tx.Commit()
})

// backendOf returns which server session serves the lane's pool (its one
// idle connection): the backend's pid and start time.
func backendOf(t *testing.T, l *lane) string {
	t.Helper()
	var id string
	err := l.pool.QueryRowContext(t.Context(),
		`SELECT pg_backend_pid() || '@' || backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&id)
	if err != nil {
		t.Fatalf("read the lane's backend: %v", err)
	}
	return id
}

// TestKeepsConnHealthyOnPostgres holds rule 5 (keepsConnHealthy) to what
// Postgres and pgx really do: after every case whose fault the rule calls
// harmless to the connection, on correct code, the case passes, its lane is
// kept (no fresh pool), and the very session that served the case serves the
// next one — it was neither closed nor replaced (but for a connect case,
// which starts on an empty pool) — and a clean case after it
// passes on it. A fault the rule wrongly called harmless would show a new
// backend here (the driver or database/sql dropped the connection) or fail
// the case's session check.
func TestKeepsConnHealthyOnPostgres(t *testing.T) {
	cfg := kvConfig(t)
	for _, op := range []Operation{updateOnPool, insertReturningOnPool, readBumpInTx, preparedClosed} {
		t.Run(op.Name, func(t *testing.T) {
			r, err := NewRunner(t.Context(), cfg, op)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			cases := r.Cases()
			clean := cases[0]
			healthy := 0
			for _, c := range cases[1:] {
				if !keepsConnHealthy(c.Fault, c.StepKind) {
					continue
				}
				healthy++
				t.Run(fmt.Sprintf("step-%d-%s/%s", c.Step, c.StepKind, c.Fault), func(t *testing.T) {
					if res := r.RunCase(t.Context(), clean); res.Failed() {
						t.Fatalf("clean case before: %v", res.Findings[0].Error())
					}
					l := r.takeLane()
					before := backendOf(t, l)
					r.putLane(l)

					res := r.RunCase(t.Context(), c)
					if res.Failed() {
						t.Fatalf("correct code failed a case whose fault keeps the connection healthy: %v", res.Findings[0].Error())
					}
					if len(r.lanes) != 1 {
						t.Fatalf("%d lanes; want the one lane every case ran on", len(r.lanes))
					}
					l = r.takeLane()
					if l.stale || l.dirty {
						r.putLane(l)
						t.Fatalf("lane stale=%v dirty=%v after the case; want it kept", l.stale, l.dirty)
					}
					after := backendOf(t, l)
					r.putLane(l)
					// A connect case starts on an empty pool by design (the
					// runner drops the idle connection): its session is new.
					if after != before && c.StepKind != faults.StepConnect {
						t.Errorf("the session serving the pool changed across the case: %s before, %s after; the fault broke the connection (rule 5 is wrong for %s at %s)",
							before, after, c.Fault, c.StepKind)
					}
					if res := r.RunCase(t.Context(), clean); res.Failed() {
						t.Errorf("clean case after it, on the kept pool: %v", res.Findings[0].Error())
					}
				})
			}
			if healthy == 0 {
				t.Fatal("no case whose fault keeps the connection healthy: nothing tested")
			}
		})
	}
}

// TestSessionCheckOpensNoConnection: after a case whose fault killed its
// connection (the wire cut under it: pgx closes the conn, and database/sql
// learns it only when it next hands the conn out), the session check looks at
// the connections the case gave back and opens none in place of the dead one
// — a fresh session has nothing to find, and its backend start is the most
// expensive thing a case can pay for. The lane's pool holds no connection
// after the case; the next case, on a fresh pool, passes.
func TestSessionCheckOpensNoConnection(t *testing.T) {
	cfg := kvConfig(t)
	r, err := NewRunner(t.Context(), cfg, readBumpInTx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	cut := 0
	for _, c := range r.Cases() {
		if c.Fault.Kind != faults.KindCut || c.StepKind == faults.StepConnect {
			continue
		}
		cut++
		t.Run(c.StepName(), func(t *testing.T) {
			res := r.RunCase(t.Context(), c)
			if res.Failed() || !res.Fired {
				t.Fatalf("the cut case on correct code: fired=%v, findings %v; want it fired and passed", res.Fired, res.Findings)
			}
			l := r.takeLane()
			defer r.putLane(l)
			if !l.stale {
				t.Fatal("the lane is not stale after a cut; want a fresh pool for the next case")
			}
			if n := l.pool.Stats().OpenConnections; n != 0 {
				t.Errorf("the lane's pool holds %d connection(s) after the case; want 0: the session check opened one in place of the cut one", n)
			}
			if res := r.RunCase(t.Context(), r.Cases()[0]); res.Failed() {
				t.Errorf("clean case after it: %v", res.Findings[0].Error())
			}
		})
	}
	if cut == 0 {
		t.Fatal("no cut case: nothing tested")
	}
}
