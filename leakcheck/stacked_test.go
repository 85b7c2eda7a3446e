package leakcheck_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// A wrapper stacked above the tracker (a fault injector) may answer a
// commit without passing it down: database/sql still ends the transaction
// and gives the connection back, and the tracker must not keep reporting a
// transaction that is gone.
func TestTrackerUnderAWrapperThatFailsCommit(t *testing.T) {
	tests := []struct {
		name string
		fail drvwrap.Op
	}{{"commit-failed-above", drvwrap.OpCommit}, {"rollback-failed-above", drvwrap.OpRollback}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := leakcheck.NewTracker()
			injected := errors.New("injected")
			c := drvwrap.WrapConnector(tr.WrapConnector(fakeConnector{}), drvwrap.Hooks{
				Before: func(_ context.Context, c *drvwrap.Call) error {
					if c.Op == tt.fail {
						return injected
					}
					return nil
				},
			})
			db := sql.OpenDB(c)
			t.Cleanup(func() { _ = db.Close() })
			tx, err := db.BeginTx(ctx(t), nil)
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			end := tx.Commit
			if tt.fail == drvwrap.OpRollback {
				end = tx.Rollback
			}
			if err := end(); !errors.Is(err, injected) {
				t.Fatalf("end = %v; want the injected error", err)
			}
			err = leakcheck.Find(ctx(t), leakcheck.WithDB(db), leakcheck.WithTracker(tr),
				leakcheck.WithLongTransaction(time.Nanosecond), leakcheck.WithTimeout(short))
			if err != nil {
				t.Fatalf("Find after a transaction ended above the tracker: %v", err)
			}
		})
	}
}
