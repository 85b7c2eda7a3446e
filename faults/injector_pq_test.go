package faults_test

import (
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
)

// pqWatchers counts lib/pq's per-call context watchers still running.
func pqWatchers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "lib/pq.(*conn).watchCancel")
}

// TestInjectorPQDriverCleansUp is the real-driver twin of
// TestInjectedFaultsStillEndTheDriversTransaction: lib/pq starts a goroutine
// per transaction that watches its context until the transaction ends in
// the driver. After any injected fault — with the context still live — that
// goroutine is gone, as after a real failure.
func TestInjectorPQDriverCleansUp(t *testing.T) {
	tests := []struct {
		name string
		plan string
	}{
		{name: "badconn-at-exec", plan: "match=exec:badconn"},
		{name: "fatal-pgerr-at-exec", plan: "match=exec:pgerr=57P01"},
		{name: "error-at-exec", plan: "match=exec:error"},
		{name: "error-at-commit", plan: "match=commit:error"},
		{name: "badconn-at-commit", plan: "match=commit:badconn"},
	}
	db := newItemsDB(t)
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pq.NewConnector(db.DSN)
			if err != nil {
				t.Fatal(err)
			}
			inj := faults.NewInjector()
			pool := sql.OpenDB(inj.WrapConnector(c))
			t.Cleanup(func() { _ = pool.Close() })
			plan, err := faults.ParsePlan(tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context() // live until the test ends, after the check
			before := pqWatchers()
			inj.Arm(plan)
			err = func() error {
				tx, err := pool.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				if _, err := tx.ExecContext(ctx, `INSERT INTO items VALUES ($1)`, 100+n); err != nil {
					return err
				}
				return tx.Commit()
			}()
			if err == nil || len(inj.Fired()) == 0 {
				t.Fatalf("got %v, fired %v; want the injected fault", err, inj.Fired())
			}
			testkit.EventuallyNil(t, func() error {
				if got := pqWatchers(); got > before {
					return fmt.Errorf("lib/pq context watchers: got %d; want %d (the driver's transaction never ended); trace:\n%s", got, before, inj.Trace())
				}
				return nil
			}, "lib/pq's context watchers to end")
		})
	}
}
