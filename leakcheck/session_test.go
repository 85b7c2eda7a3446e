package leakcheck_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// Planted session-state leaks on a pool of one connection, and their clean
// counterparts.

func sessionSet(t testing.TB, q execer) {
	t.Helper()
	mustExec(t, q, "SET statement_timeout = '5s'")
}

func sessionAdvisory(t testing.TB, q execer) {
	t.Helper()
	mustExec(t, q, "SELECT pg_advisory_lock(77)")
}

func sessionTempTable(t testing.TB, q execer) {
	t.Helper()
	mustExec(t, q, "CREATE TEMP TABLE scratch (id int)")
}

func sessionListen(t testing.TB, q execer) {
	t.Helper()
	mustExec(t, q, "LISTEN thread_renamed")
}

func sessionPrepared(t testing.TB, q execer) {
	t.Helper()
	p := q.(interface {
		PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	})
	if _, err := p.PrepareContext(ctx(t), "SELECT name FROM items WHERE id = $1"); err != nil {
		t.Fatalf("prepare: %v", err)
	}
}

func sessionClean(t testing.TB, q execer) {
	t.Helper()
	mustExec(t, q, "BEGIN")
	mustExec(t, q, "SET LOCAL statement_timeout = '5s'")
	mustExec(t, q, "SELECT pg_advisory_xact_lock(77)")
	mustExec(t, q, "CREATE TEMP TABLE scratch (id int) ON COMMIT DROP")
	mustExec(t, q, "COMMIT")
	mustExec(t, q, "LISTEN thread_renamed")
	mustExec(t, q, "UNLISTEN thread_renamed")
	mustExec(t, q, "SELECT pg_advisory_lock(78)")
	mustExec(t, q, "SELECT pg_advisory_unlock(78)")
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func mustExec(t testing.TB, q execer, query string) {
	t.Helper()
	if _, err := q.ExecContext(ctx(t), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestSessionStateOnPostgres(t *testing.T) {
	tests := []struct {
		name  string
		plant func(testing.TB, execer)
		want  string
	}{
		{"clean", sessionClean, ""},
		{"session-set", sessionSet, "setting statement_timeout=5s set for the whole session"},
		{"advisory-lock", sessionAdvisory, "advisory lock 77 ExclusiveLock still held"},
		{"temp-table", sessionTempTable, "temporary table scratch left in the session"},
		{"listen", sessionListen, "still listening on channel thread_renamed"},
		{"prepared-statement", sessionPrepared, ": SELECT name FROM items WHERE id = $1 never deallocated"},
	}
	for _, tt := range tests {
		for _, via := range []string{"pool-of-one", "conn"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				d := newPG(t)
				var q interface {
					execer
					leakcheck.Querier
				}
				if via == "conn" {
					q = rawConn(t, d.DB)
				} else {
					d.DB.SetMaxOpenConns(1)
					q = d.DB
				}
				before, err := leakcheck.SnapshotSession(ctx(t), q)
				if err != nil {
					t.Fatalf("snapshot: %v", err)
				}
				tt.plant(t, q)
				err = leakcheck.FindSession(ctx(t), q, before)
				var r recorder
				leakcheck.VerifySession(&r, q, before)
				if want := min(len(tt.want), 1); len(r.errs) != want {
					t.Errorf("VerifySession reported %d errors (%q); want %d", len(r.errs), r.errs, want)
				}
				if tt.want == "" {
					if err != nil {
						t.Fatalf("FindSession on clean code: %v", err)
					}
					return
				}
				if !leakcheck.Has(err, leakcheck.CheckSession) {
					t.Fatalf("FindSession = %v; want a session finding", err)
				}
				mustContain(t, err, tt.want)
				if tt.name == "session-set" {
					t.Logf("the report:\n%v", err)
				}
			})
		}
	}
}

func TestSnapshotSessionRefusesALargePool(t *testing.T) {
	d := newPG(t)
	d.DB.SetMaxOpenConns(4)
	_, err := leakcheck.SnapshotSession(ctx(t), d.DB)
	if !errors.Is(err, leakcheck.ErrOption) {
		t.Fatalf("SnapshotSession on a pool of 4 = %v; want ErrOption", err)
	}
}
