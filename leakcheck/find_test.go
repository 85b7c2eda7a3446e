package leakcheck_test

import (
	"errors"
	"strings"
	"testing"
	"time"

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

func TestVerifyNoneReports(t *testing.T) {
	db, mock := newMock(t, nil)
	leakTx(t, db, mock)
	var r recorder
	leakcheck.VerifyNone(&r, leakcheck.WithDB(db), leakcheck.WithTimeout(short))
	if len(r.errs) != 1 {
		t.Fatalf("VerifyNone reported %d errors; want 1", len(r.errs))
	}
}
