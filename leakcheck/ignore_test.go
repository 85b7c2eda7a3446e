package leakcheck_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// What lingers after clean use of an open pgx pool — queries, a transaction,
// a query cancelled by its context — is on the ignore list, and only that.
func TestIgnoreListOnPostgres(t *testing.T) {
	d := newPG(t)
	base := goleak.IgnoreCurrent()
	tr := leakcheck.NewTracker()
	db := trackedPool(t, d, tr)
	db.SetConnMaxIdleTime(time.Minute)
	cleanServerUse(t, db)
	c, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
	defer cancel()
	if _, err := db.ExecContext(c, "SELECT pg_sleep(10)"); err == nil {
		t.Fatalf("pg_sleep(10) under a 50ms deadline succeeded")
	}
	db.SetConnMaxIdleTime(time.Hour) // with connections open: starts the cleaner

	raw := goleak.Find(base)
	t.Logf("without the ignore list, goleak reports: %v", raw)
	if err := leakcheck.FindGoroutines(ctx(t), base); err != nil {
		t.Fatalf("FindGoroutines after clean use of an open pool: %v", err)
	}
	s := leakcheck.EnterScope(context.Background())
	defer s.Exit()
	cleanServerUse(t, db)
	if err := leakcheck.FindScope(ctx(t), s); err != nil {
		t.Fatalf("FindScope after clean use of an open pool: %v", err)
	}
}
