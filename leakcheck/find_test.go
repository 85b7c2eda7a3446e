package leakcheck_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// Find runs every enabled check and lists every finding in one error.
func TestFindListsEveryFinding(t *testing.T) {
	tr := leakcheck.NewTracker()
	base := goleak.IgnoreCurrent()
	db, mock := newMock(t, tr)
	leakRows(t, db, mock)
	t.Cleanup(spawnAndForget())

	err := leakcheck.Find(ctx(t),
		leakcheck.WithDB(db), leakcheck.WithTracker(tr),
		leakcheck.WithGoroutines(base), leakcheck.WithTimeout(short))
	var le *leakcheck.Error
	if !errors.As(err, &le) {
		t.Fatalf("Find = %v; want a *leakcheck.Error", err)
	}
	var got []string
	for _, f := range le.Findings {
		got = append(got, string(f.Check))
	}
	if want := "pool goroutines"; strings.Join(got, " ") != want {
		t.Errorf("findings = %q; want %q\n%v", got, want, err)
	}
	mustContain(t, err, "leakcheck: 2 leaks found:", "leakRows", "spawnAndForget")
}

func TestFindCleanIsNil(t *testing.T) {
	tr := leakcheck.NewTracker()
	base := goleak.IgnoreCurrent()
	db, mock := newMock(t, tr)
	cleanUse(t, db, mock)
	err := leakcheck.Find(ctx(t), leakcheck.WithDB(db), leakcheck.WithTracker(tr),
		leakcheck.WithGoroutines(base), leakcheck.WithLongTransaction(time.Minute))
	if err != nil {
		t.Fatalf("Find on clean code: %v", err)
	}
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []leakcheck.Option
	}{
		{"nothing-enabled", nil},
		{"nil-db", []leakcheck.Option{leakcheck.WithDB(nil)}},
		{"server-without-app-name", []leakcheck.Option{leakcheck.WithServer(nil, "")}},
		{"zero-timeout", []leakcheck.Option{leakcheck.WithGoroutines(), leakcheck.WithTimeout(0)}},
		{"negative-threshold", []leakcheck.Option{leakcheck.WithGoroutines(), leakcheck.WithLongTransaction(-time.Second)}},
		{"threshold-with-nothing-to-apply-it-to", []leakcheck.Option{leakcheck.WithGoroutines(), leakcheck.WithLongTransaction(time.Second)}},
		{"nil-tracker", []leakcheck.Option{leakcheck.WithTracker(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := leakcheck.Find(ctx(t), tt.opts...)
			if !errors.Is(err, leakcheck.ErrOption) {
				t.Fatalf("Find = %v; want ErrOption", err)
			}
		})
	}
}

// recorder is a TestingT that keeps what it was told.
type recorder struct{ errs []string }

func (r *recorder) Helper()                           {}
func (r *recorder) Errorf(format string, args ...any) { r.errs = append(r.errs, format) }

// Each Verify function reports its check's findings through t, once, and
// nothing on clean code: VerifyNone and the single-check ones alike.
func TestVerifyReportsThroughT(t *testing.T) {
	pool := func(plant func(testing.TB, *sql.DB, sqlmock.Sqlmock) int) func(*testing.T, leakcheck.TestingT) {
		return func(t *testing.T, r leakcheck.TestingT) {
			db, mock := newMock(t, nil)
			plant(t, db, mock)
			leakcheck.VerifyPool(r, db, leakcheck.WithTimeout(short))
		}
	}
	scope := func(leak bool) func(*testing.T, leakcheck.TestingT) {
		return func(t *testing.T, r leakcheck.TestingT) {
			s := leakcheck.EnterScope(context.Background())
			if leak {
				t.Cleanup(spawnAndForget())
			} else {
				spawnAndWait()
			}
			s.Exit()
			leakcheck.VerifyScope(r, s, leakcheck.WithTimeout(short))
		}
	}
	longTx := func(plant func(testing.TB, *leakcheck.Tracker, *sql.DB, sqlmock.Sqlmock) int) func(*testing.T, leakcheck.TestingT) {
		return func(t *testing.T, r leakcheck.TestingT) {
			tr := leakcheck.NewTracker()
			db, mock := newMock(t, tr)
			plant(t, tr, db, mock)
			leakcheck.VerifyLongTransactions(r, tr)
		}
	}
	none := func(plant func(testing.TB, *sql.DB, sqlmock.Sqlmock) int) func(*testing.T, leakcheck.TestingT) {
		return func(t *testing.T, r leakcheck.TestingT) {
			db, mock := newMock(t, nil)
			plant(t, db, mock)
			leakcheck.VerifyNone(r, leakcheck.WithDB(db), leakcheck.WithTimeout(short))
		}
	}
	tests := []struct {
		name   string
		verify func(*testing.T, leakcheck.TestingT)
		want   int // errors reported
	}{
		{"none/leaked-tx", none(leakTx), 1},
		{"none/clean", none(cleanUse), 0},
		{"pool/leaked-tx", pool(leakTx), 1},
		{"pool/clean", pool(cleanUse), 0},
		{"scope/goroutine-outlives-the-call", scope(true), 1},
		{"scope/clean", scope(false), 0},
		{"long-transactions/held-across-external-call", longTx(renameHoldingTx), 1},
		{"long-transactions/clean", longTx(renameWithoutTx), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			tt.verify(t, &r)
			if len(r.errs) != tt.want {
				t.Fatalf("reported %d errors (%q); want %d", len(r.errs), r.errs, tt.want)
			}
		})
	}
}
