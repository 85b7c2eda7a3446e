package leakcheck_test

import (
	"database/sql"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// spawnAndForget is the planted goroutine leak: a call that returns while
// the goroutine it started keeps running. stop ends it.
func spawnAndForget() (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		<-quit
	}()
	return func() { close(quit); <-done }
}

// spawnAndWait is the clean counterpart: the goroutine ends before the call returns.
func spawnAndWait() {
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
}

func TestGoroutines(t *testing.T) {
	tests := []struct {
		name string
		run  func() (stop func())
		leak bool
	}{
		{"clean", func() func() { spawnAndWait(); return func() {} }, false},
		{"goroutine-outlives-the-call", spawnAndForget, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := goleak.IgnoreCurrent()
			stop := tt.run()
			t.Cleanup(stop)
			err := leakcheck.FindGoroutines(ctx(t), base)
			if !tt.leak {
				if err != nil {
					t.Fatalf("FindGoroutines on clean code: %v", err)
				}
				return
			}
			if !errors.Is(err, leakcheck.ErrLeak) || !leakcheck.Has(err, leakcheck.CheckGoroutines) {
				t.Fatalf("FindGoroutines = %v; want a goroutine finding", err)
			}
			mustContain(t, err, "1 goroutine still running", "leakcheck_test.spawnAndForget")
		})
	}
}

// An open pool's own goroutines are on the ignore list; an unclosed rows's
// watcher goroutine (its context can end) is not.
func TestGoroutinesIgnoreListOnSqlmock(t *testing.T) {
	base := goleak.IgnoreCurrent()
	db, mock := newMock(t, nil)
	mock.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"x"}).AddRow(1))
	var one int
	if err := db.QueryRowContext(ctx(t), "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("query: %v", err)
	}
	db.SetConnMaxIdleTime(time.Hour) // with a connection open: starts the connection cleaner
	if err := leakcheck.FindGoroutines(ctx(t), base); err != nil {
		t.Fatalf("an open, idle pool: %v", err)
	}

	mock.ExpectQuery("SELECT 2").WillReturnRows(sqlmock.NewRows([]string{"x"}).AddRow(2))
	rows := leakRowsWithContext(t, db)
	defer rows.Close()
	err := leakcheck.FindGoroutines(ctx(t), base)
	mustContain(t, err, "database/sql.(*Rows).awaitDone")
}

func leakRowsWithContext(t *testing.T, db *sql.DB) *sql.Rows {
	rows, err := db.QueryContext(ctx(t), "SELECT 2")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return rows
}
