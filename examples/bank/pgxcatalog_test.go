package bank

import (
	"testing"

	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// pgConfigPgx returns a matrix configuration for pgx operations on a fresh
// migrated database.
func pgConfigPgx(t *testing.T) scenarios.Config {
	t.Helper()
	db := pgtest.New(t, pgtest.WithMigration("bank-v1", Migrate))
	return scenarios.Config{Backend: scenarios.Postgres, DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName}
}

// TestMatrixPgx puts every operation of the pgx store through every fault
// the wire can apply at every step on real PostgreSQL.
func TestMatrixPgx(t *testing.T) {
	t.Parallel() // a database of its own: it runs beside the planted-bug tests, which mostly wait
	scenarios.RunTests(t, pgConfigPgx(t), pgxCatalog(thePgxStore)...)
}
