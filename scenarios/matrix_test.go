package scenarios

import (
	"testing"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// pgConfig returns a Postgres matrix configuration on a fresh database.
func pgConfig(t testing.TB) Config {
	t.Helper()
	db := pgtest.New(t, pgtest.WithMigration("handlers", handlers.Migrate))
	return Config{Backend: Postgres, DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName}
}

// TestMatrix puts every catalog operation through every applicable fault at
// every step, on sqlmock (expectations generated from the golden traces) and
// on real PostgreSQL.
func TestMatrix(t *testing.T) {
	t.Run("sqlmock", func(t *testing.T) {
		RunTests(t, Config{Backend: Sqlmock}, Catalog()...)
	})
	t.Run("postgres", func(t *testing.T) {
		RunTests(t, pgConfig(t), Catalog()...)
	})
}

// TestHTTPDisconnect drives the eight operations through the HTTP API with
// the client going away (the request context cancelled) at each step.
func TestHTTPDisconnect(t *testing.T) {
	t.Run("sqlmock", func(t *testing.T) {
		RunTests(t, Config{Backend: Sqlmock, Disconnect: true}, HTTPCatalog()...)
	})
	t.Run("postgres", func(t *testing.T) {
		cfg := pgConfig(t)
		cfg.Disconnect = true
		RunTests(t, cfg, HTTPCatalog()...)
	})
}
