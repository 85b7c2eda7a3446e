package leakcheck_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

var mockSeq atomic.Int64

// newMock returns a sqlmock pool, wrapped by tr when tr is not nil, with
// expectations matched exactly and in any order. Cleanup closes the pool.
func newMock(t testing.TB, tr *leakcheck.Tracker) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	dsn := fmt.Sprintf("leakcheck-%d", mockSeq.Add(1))
	raw, mock, err := sqlmock.NewWithDSN(dsn, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatalf("sqlmock: %v", err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	mock.MatchExpectationsInOrder(false)
	var d driver.Driver = raw.Driver()
	if tr != nil {
		d = tr.WrapDriver(d)
	}
	var db *sql.DB
	if dc, ok := d.(driver.DriverContext); ok {
		c, err := dc.OpenConnector(dsn)
		if err != nil {
			t.Fatalf("open connector: %v", err)
		}
		db = sql.OpenDB(c)
	} else {
		db, err = sql.Open("sqlmock", dsn)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, mock
}

// line returns the line of its caller plus delta.
func line(delta int) int {
	_, _, l, _ := runtime.Caller(1)
	return l + delta
}

// mustContain fails t unless err's text contains every want.
func mustContain(t testing.TB, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not name %q; got:\n%v", w, err)
		}
	}
}

// ctx returns the test's context.
func ctx(t testing.TB) context.Context {
	t.Helper()
	return t.Context()
}
