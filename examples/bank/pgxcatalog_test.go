package bank

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// newPgxAccounts builds the pgx store under test on a case's instrumented
// pool.
type newPgxAccounts func(pool *pgxpool.Pool, n Notifier) accounts

// thePgxStore is the PgxStore itself.
func thePgxStore(pool *pgxpool.Pool, n Notifier) accounts { return NewPgxStore(pool, n) }

// pgxCatalog is the bank catalog with each operation run on the pgx store
// store builds (RunPgx instead of Run): same names, fixtures and states.
func pgxCatalog(store newPgxAccounts) []scenarios.Operation { return onPgx(catalog, store) }

// onPgx returns the operations of a database/sql catalog (catalog or
// probeCatalog), each run on the pgx store that store builds instead.
func onPgx(ofStore func(newAccounts) []scenarios.Operation, store newPgxAccounts) []scenarios.Operation {
	ops := ofStore(nil)
	for i := range ops {
		name := ops[i].Name
		ops[i].Run = nil
		ops[i].RunPgx = func(ctx context.Context, pool *pgxpool.Pool, fx scenarios.Fixture) error {
			// the database/sql catalog's call, on the pgx store
			on := func(_ *sql.DB, n Notifier) accounts { return store(pool, n) }
			for _, op := range ofStore(on) {
				if op.Name == name {
					return op.Run(ctx, nil, fx)
				}
			}
			return fmt.Errorf("pgx catalog: no operation %s", name)
		}
	}
	return ops
}

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
	scenarios.RunTests(t, pgConfigPgx(t), pgxCatalog(thePgxStore)...)
}
