package bank

import (
	"testing"

	"github.com/lib/pq"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// drivers are the two database/sql drivers the matrix runs through.
var drivers = []string{"pgx", "pq"}

// pgConfig returns a matrix configuration on a fresh migrated database,
// whose instrumented pools open through driver: "pgx" (pgx stdlib, from the
// DSN: every fault kind) or "pq" (lib/pq, through a Connector dialing
// through a faults.Wire: every kind but lock and stmt-timeout, whose
// locks the runner takes on a pool it opens from a DSN).
func pgConfig(t *testing.T, driver string) scenarios.Config {
	t.Helper()
	db := pgtest.New(t, pgtest.WithMigration("bank-v1", Migrate))
	cfg := scenarios.Config{Backend: scenarios.Postgres, DB: db.DB, Admin: db.Admin, AppName: db.AppName}
	switch driver {
	case "pgx":
		cfg.DSN = db.DSN
	case "pq":
		c, err := pq.NewConnector(db.DSN)
		if err != nil {
			t.Fatalf("lib/pq connector for %s: %v", db.DSN, err)
		}
		cfg.Wire = faults.NewWire()
		c.Dialer(cfg.Wire.Dialer())
		cfg.Connector = c
	default:
		t.Fatalf("driver %q: want pgx or pq", driver)
	}
	return cfg
}

// TestMatrix puts every bank operation through every applicable fault at
// every step on real PostgreSQL, through pgx stdlib and through lib/pq.
func TestMatrix(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			scenarios.RunTests(t, pgConfig(t, driver), catalog(theStore)...)
		})
	}
}
