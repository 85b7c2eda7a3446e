package leakcheck_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// getThread is a stand-in for a handler that takes a connection for a
// lookup and forgets to give it back.
func getThread(t testing.TB, db *sql.DB) int {
	t.Helper()
	at := line(1)
	conn, err := db.Conn(ctx(t))
	if err != nil {
		t.Fatalf("conn: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var name string
	if err := conn.QueryRowContext(ctx(t), "SELECT name FROM items WHERE id = 1").Scan(&name); err != nil {
		t.Fatalf("select: %v", err)
	}
	return at
}

// listMessages opens rows and returns without closing them.
func listMessages(t testing.TB, db *sql.DB) int {
	t.Helper()
	at := line(1)
	rows, err := db.QueryContext(ctx(t), "SELECT id, name\n\t\tFROM items\n\t\tORDER BY id")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	t.Cleanup(func() { _ = rows.Close() })
	return at
}

// On pgx (which reports connections going back to the pool) the tracker
// names where each connection still in use was acquired — also one reused
// from the pool — and forgets the ones given back.
func TestTrackerOnPostgres(t *testing.T) {
	tests := []struct {
		name  string
		plant func(testing.TB, *sql.DB) int
		want  []string
	}{
		{"conn-never-closed", getThread, []string{
			"1 connection still in use",
			"acquired 1", "ago by leakcheck_test.getThread at leakcheck/tracker_test.go:%d",
		}},
		{"rows-never-closed", listMessages, []string{
			"1 connection still in use",
			"ago by leakcheck_test.listMessages at leakcheck/tracker_test.go:%d",
			"holding rows of `SELECT id, name FROM items ORDER BY id` opened",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newPG(t)
			tr := leakcheck.NewTracker()
			db := trackedPool(t, d, tr)
			db.SetMaxIdleConns(4)
			// Warm the pool: two connections taken at once and given back,
			// so the leak below reuses one (acquired through ResetSession)
			// while the other sits idle.
			var warm []*sql.Conn
			for range 2 {
				c, err := db.Conn(ctx(t))
				if err != nil {
					t.Fatalf("warm up: %v", err)
				}
				if _, err := c.ExecContext(ctx(t), "SELECT 1"); err != nil {
					t.Fatalf("warm up: %v", err)
				}
				warm = append(warm, c)
			}
			for _, c := range warm {
				if err := c.Close(); err != nil {
					t.Fatalf("warm up: %v", err)
				}
			}
			if err := leakcheck.FindPool(ctx(t), db, leakcheck.WithTracker(tr)); err != nil {
				t.Fatalf("clean pool: %v", err)
			}
			if r := tr.Report(ctx(t), db); r != "" {
				t.Fatalf("Report on a clean pool = %q; want empty", r)
			}
			at := tt.plant(t, db)
			err := leakcheck.Find(ctx(t), leakcheck.WithDB(db), leakcheck.WithTracker(tr),
				leakcheck.WithServer(d.Admin, d.AppName), leakcheck.WithTimeout(short))
			var want []string
			for _, w := range tt.want {
				if strings.Contains(w, "%d") {
					w = fmt.Sprintf(w, at)
				}
				want = append(want, w)
			}
			mustContain(t, err, want...)
			if strings.Count(err.Error(), "connection #") != 1 {
				t.Errorf("the report names more than the one connection in use:\n%v", err)
			}
			t.Logf("the report:\n%v", err)
		})
	}
}
