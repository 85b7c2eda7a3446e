package pgtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// startServer starts a server of its own with one provider for this test; it skips when the
// provider cannot serve here, unless the environment demands Postgres.
func startServer(t testing.TB, provider string, opts ...pgtest.Option) *pgtest.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := pgtest.Start(ctx, append([]pgtest.Option{pgtest.WithProvider(provider)}, opts...)...)
	if err != nil {
		if pgtest.Required() {
			t.Fatalf("start %s provider (Postgres is required here): %v", provider, err)
		}
		if errors.Is(err, pgtest.ErrNoPostgres) {
			t.Skipf("%s provider cannot serve here: %v", provider, err)
		}
		t.Fatalf("start %s provider: %v", provider, err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close %s server: %v", provider, err)
		}
	})
	return srv
}

// newDatabase is NewDatabase with its cleanup registered.
func newDatabase(t testing.TB, srv *pgtest.Server, opts ...pgtest.Option) *pgtest.Database {
	t.Helper()
	db, err := srv.NewDatabase(context.Background(), opts...)
	if err != nil {
		t.Fatalf("new database on %s: %v", srv.Provider(), err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close database %s: %v", db.Name, err)
		}
	})
	return db
}

// databaseExists asks the server whether a database is still there.
func databaseExists(t testing.TB, srv *pgtest.Server, name string) bool {
	t.Helper()
	admin := startAdmin(t, srv)
	var n int
	if err := admin.QueryRowContext(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatalf("look up database %s: %v", name, err)
	}
	return n == 1
}
