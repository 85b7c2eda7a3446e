package leakcheck_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

const short = 100 * time.Millisecond

// The planted leaks: each takes a connection and does not give it back; it
// returns the line that took the connection and a cleanup that gives it
// back. Their names appear in the leak reports.

func leakRows(t testing.TB, db *sql.DB, mock sqlmock.Sqlmock) int {
	t.Helper()
	mock.ExpectQuery("SELECT id FROM messages").WillReturnRows(sqlmock.NewRows([]string{"id"}).AddRow(1).AddRow(2))
	at := line(1)
	rows, err := db.QueryContext(ctx(t), "SELECT id FROM messages")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	t.Cleanup(func() { _ = rows.Close() })
	return at
}

func leakTx(t testing.TB, db *sql.DB, mock sqlmock.Sqlmock) int {
	t.Helper()
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE threads SET title = 'x'").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectRollback()
	at := line(1)
	tx, err := db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	if _, err := tx.ExecContext(ctx(t), "UPDATE threads SET title = 'x'"); err != nil {
		t.Fatalf("exec: %v", err)
	}
	return at
}

func leakConn(t testing.TB, db *sql.DB, mock sqlmock.Sqlmock) int {
	t.Helper()
	mock.ExpectExec("SET statement_timeout = 0").WillReturnResult(sqlmock.NewResult(0, 0))
	conn, err := db.Conn(ctx(t))
	if err != nil {
		t.Fatalf("conn: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	at := line(1)
	if _, err := conn.ExecContext(ctx(t), "SET statement_timeout = 0"); err != nil {
		t.Fatalf("exec: %v", err)
	}
	return at
}

func cleanUse(t testing.TB, db *sql.DB, mock sqlmock.Sqlmock) int {
	t.Helper()
	mock.ExpectQuery("SELECT id FROM messages").WillReturnRows(sqlmock.NewRows([]string{"id"}).AddRow(1))
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE threads SET title = 'x'").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	mock.ExpectExec("SET statement_timeout = 0").WillReturnResult(sqlmock.NewResult(0, 0))
	rows, err := db.QueryContext(ctx(t), "SELECT id FROM messages")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	for rows.Next() {
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatalf("rows: %v", err)
	}
	tx, err := db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.ExecContext(ctx(t), "UPDATE threads SET title = 'x'"); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	conn, err := db.Conn(ctx(t))
	if err != nil {
		t.Fatalf("conn: %v", err)
	}
	if _, err := conn.ExecContext(ctx(t), "SET statement_timeout = 0"); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if err := conn.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return 0
}

func TestPoolOnSqlmock(t *testing.T) {
	tests := []struct {
		name  string
		plant func(testing.TB, *sql.DB, sqlmock.Sqlmock) int
		want  []string // in the report, with the tracker; "%d" is the planting line
	}{
		{"clean", cleanUse, nil},
		{"rows-never-closed", leakRows, []string{
			"1 connection still in use",
			"acquired 1",
			"ago by leakcheck_test.leakRows at leakcheck/pool_test.go:%d",
			"called from leakcheck_test.TestPoolOnSqlmock",
			"holding rows of `SELECT id FROM messages` opened",
		}},
		{"tx-never-ended", leakTx, []string{
			"1 connection still in use",
			"holding a transaction begun",
			"by leakcheck_test.leakTx at leakcheck/pool_test.go:%d",
		}},
		{"conn-never-closed", leakConn, []string{
			"1 connection still in use",
			"last used by leakcheck_test.leakConn at leakcheck/pool_test.go:%d",
		}},
	}
	for _, tt := range tests {
		for _, tracked := range []bool{false, true} {
			name := tt.name + "/untracked"
			if tracked {
				name = tt.name + "/tracked"
			}
			t.Run(name, func(t *testing.T) {
				var tr *leakcheck.Tracker
				if tracked {
					tr = leakcheck.NewTracker()
				}
				db, mock := newMock(t, tr)
				at := tt.plant(t, db, mock)
				opts := []leakcheck.Option{leakcheck.WithTimeout(short)}
				if tr != nil {
					opts = append(opts, leakcheck.WithTracker(tr))
				}
				err := leakcheck.FindPool(ctx(t), db, opts...)
				if tt.want == nil {
					if err != nil {
						t.Fatalf("FindPool on clean code: %v", err)
					}
					return
				}
				if !errors.Is(err, leakcheck.ErrLeak) || !leakcheck.Has(err, leakcheck.CheckPool) {
					t.Fatalf("FindPool = %v; want a pool finding (ErrLeak)", err)
				}
				if !tracked {
					mustContain(t, err, "1 connection still in use", "wrap the connector with a leakcheck.Tracker")
					return
				}
				want := make([]string, len(tt.want))
				for i, w := range tt.want {
					want[i] = w
					if strings.Contains(w, "%d") {
						want[i] = fmt.Sprintf(w, at)
					}
				}
				mustContain(t, err, want...)
				t.Logf("the report:\n%v", err)
			})
		}
	}
}
