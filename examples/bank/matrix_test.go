package bank

import (
	"context"
	"database/sql"
	"flag"
	"os"
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

var update = flag.Bool("update", false, "rewrite the golden traces in testdata (recorded on PostgreSQL)")

// TestGolden records each bank operation on PostgreSQL and compares its
// trace with testdata/<operation>.trace, the steps and rows the sqlmock
// matrix replays; -update rewrites them. Each is recorded on a fresh
// database, so its fixture (the first there) and its rows are the same every
// time.
func TestGolden(t *testing.T) {
	for _, op := range catalog(theStore) {
		scenarios.GoldenTests(t, "testdata", *update, pgConfig(t, "pgx"), op)
	}
}

// TestMatrix puts every bank operation through every applicable fault at
// every step: on sqlmock (expectations generated from the golden traces),
// and on real PostgreSQL through pgx stdlib and through lib/pq; cases run
// side by side (a CPU's worth) but through lib/pq, whose Connector the
// runner cannot give each case's sessions a name of their own.
func TestMatrix(t *testing.T) {
	t.Parallel() // a database of its own: it runs beside the planted-bug tests, which mostly wait
	t.Run("sqlmock", func(t *testing.T) {
		scenarios.RunTests(t, scenarios.Config{Backend: scenarios.Sqlmock, Golden: os.DirFS("testdata"), Parallel: scenarios.DefaultParallel()},
			catalog(theStore)...)
	})
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			cfg := pgConfig(t, driver)
			if cfg.Connector == nil {
				cfg.Parallel = scenarios.DefaultParallel()
			}
			scenarios.RunTests(t, cfg, catalog(theStore)...)
		})
	}
}

// TestMigrateMatrix puts Migrate itself through every applicable fault at
// every step on PostgreSQL (pgx stdlib): a migration is a transaction like
// any other (an advisory lock, the schema, a commit), and one that fails must
// roll back, surface its error, honour its caller's context and leave nothing
// behind. The schema is idempotent, so each case migrates the already
// migrated test database; the cases run one at a time, since every migration
// takes the same advisory lock.
func TestMigrateMatrix(t *testing.T) {
	t.Parallel() // a database of its own: it runs beside the planted-bug tests, which mostly wait
	op := scenarios.Operation{
		Name:  "Migrate",
		Setup: func(context.Context, *sql.DB) (scenarios.Fixture, error) { return nil, nil },
		Run: func(ctx context.Context, db *sql.DB, _ scenarios.Fixture) error {
			return Migrate(ctx, db)
		},
	}
	scenarios.RunTests(t, pgConfig(t, "pgx"), op)
}
