package pgtest_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

func migrateItems(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)`)
	return err
}

func TestNewGivesAFreshMigratedDatabase(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"first", "second", "third"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.New(t, pgtest.WithMigration("items-v1", migrateItems))
			ctx := t.Context()
			if _, err := db.DB.ExecContext(ctx, `INSERT INTO items VALUES (1, $1)`, name); err != nil {
				t.Fatalf("insert: %v", err)
			}
			var n int
			if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil {
				t.Fatalf("count: %v", err)
			}
			if n != 1 {
				t.Errorf("rows in a fresh database: got %d; want 1 (databases are not isolated)", n)
			}
			var app string
			if err := db.DB.QueryRowContext(ctx, `SELECT current_setting('application_name')`).Scan(&app); err != nil {
				t.Fatalf("application_name: %v", err)
			}
			if app != db.AppName {
				t.Errorf("application_name: got %q; want %q", app, db.AppName)
			}
		})
	}
}
