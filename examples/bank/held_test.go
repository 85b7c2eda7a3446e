package bank

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/lib/pq"

	"github.com/sessionsafe/sessionsafe/leakcheck"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// trackedAudit is an audit log that marks its call as external on a
// leakcheck.Tracker, so that a transaction held across it is reported.
type trackedAudit struct{ tracker *leakcheck.Tracker }

// TransferCommitted runs an (empty) external call through the tracker.
func (a trackedAudit) TransferCommitted(ctx context.Context, _ Transfer) error {
	return a.tracker.External(ctx, "audit log", func(context.Context) error { return nil })
}

// TestNotifierOutsideTransaction checks, with leakcheck's Tracker directly
// (the matrix reports it too: the catalog's audit log marks its call with
// scenarios.External), that the Store tells its Notifier after the commit
// and that the planted notifiesInTx, which tells it inside the transaction,
// is reported at its own file and line, through both drivers.
func TestNotifierOutsideTransaction(t *testing.T) {
	tests := []struct {
		name     string
		store    newAccounts
		wantHeld bool
	}{
		{"store", theStore, false},
		{"notifies-in-tx", func(db *sql.DB, n Notifier) accounts { return notifiesInTx{NewStore(db, n)} }, true},
	}
	for _, driverName := range drivers {
		t.Run(driverName, func(t *testing.T) {
			db := pgtest.New(t, pgtest.WithMigration("bank-v1", Migrate))
			var connector driver.Connector
			switch driverName {
			case "pgx":
				cc, err := db.ConnConfig()
				if err != nil {
					t.Fatal(err)
				}
				connector = stdlib.GetConnector(*cc)
			case "pq":
				c, err := pq.NewConnector(db.DSN)
				if err != nil {
					t.Fatalf("lib/pq connector for %s: %v", db.DSN, err)
				}
				connector = c
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ctx := t.Context()
					tracker := leakcheck.NewTracker()
					pool := sql.OpenDB(tracker.WrapConnector(connector))
					t.Cleanup(func() { _ = pool.Close() })
					fx, err := setupAccounts(ctx, db.DB)
					if err != nil {
						t.Fatal(err)
					}
					f := fx.(fixture)
					if _, err := tt.store(pool, trackedAudit{tracker}).Transfer(ctx, f.Mid, f.Rich, 1234); err != nil {
						t.Fatalf("transfer: %v", err)
					}
					err = leakcheck.Find(ctx, leakcheck.WithDB(pool), leakcheck.WithTracker(tracker))
					switch {
					case !tt.wantHeld && err != nil:
						t.Fatalf("got %v; want no finding: the Store tells its notifier after the commit", err)
					case tt.wantHeld && err == nil:
						t.Fatal("got no finding; want a transaction held across the external call \"audit log\"")
					case tt.wantHeld && (!strings.Contains(err.Error(), `held across the external call "audit log"`) ||
						!strings.Contains(err.Error(), plantedAt)):
						t.Fatalf("got %v; want a transaction held across the external call \"audit log\", begun at %s", err, plantedAt)
					case tt.wantHeld:
						t.Logf("caught:\n%v", err)
					}
				})
			}
		})
	}
}
