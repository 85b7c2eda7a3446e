package leakcheck_test

import (
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/leakcheck"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// newPG returns a fresh database (skipping without Postgres) with one table
// "items" holding rows 1 and 2.
func newPG(t testing.TB) *pgtest.Database {
	t.Helper()
	d := pgtest.New(t)
	if _, err := d.DB.ExecContext(ctx(t), `CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a'), (2, 'b')`); err != nil {
		t.Fatalf("create items: %v", err)
	}
	return d
}

// trackedPool opens a second pool on d's database, with d's
// application_name, whose connector tr wraps. Cleanup closes it.
func trackedPool(t testing.TB, d *pgtest.Database, tr *leakcheck.Tracker) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(d.DSN)
	if err != nil {
		t.Fatalf("parse dsn: %v", err)
	}
	db := sql.OpenDB(tr.WrapConnector(stdlib.GetConnector(*cfg)))
	t.Cleanup(func() { _ = db.Close() })
	return db
}
