package pgtest_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// startAdmin opens a pool on the server's postgres database, closed at cleanup.
func startAdmin(t testing.TB, srv *pgtest.Server) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", srv.DSN())
	if err != nil {
		t.Fatalf("open admin pool: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestProviders runs each provider through the whole life of a server: start, a migrated
// database whose connections carry its application_name, the drop on close, and the stop.
func TestProviders(t *testing.T) {
	tests := []struct {
		name  string
		start func(t *testing.T) *pgtest.Server
	}{
		{"local", func(t *testing.T) *pgtest.Server { return startServer(t, pgtest.ProviderLocal) }},
		{"docker", func(t *testing.T) *pgtest.Server {
			return startServer(t, pgtest.ProviderDocker, pgtest.WithImage(dockerImage()))
		}},
		{"dsn-on-local", func(t *testing.T) *pgtest.Server {
			return startServer(t, pgtest.ProviderDSN, pgtest.WithDSN(sharedLocal(t).DSN()))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.start(t)
			t.Logf("provider %s: postgres %s ready in %s", srv.Provider(), srv.Version(), srv.ReadyIn())
			want := tt.name
			if want == "dsn-on-local" {
				want = pgtest.ProviderDSN
			}
			if srv.Provider() != want {
				t.Errorf("Provider(): got %q; want %q", srv.Provider(), want)
			}
			ctx := t.Context()
			db, err := srv.NewDatabase(ctx, pgtest.WithMigration("items-v1", migrateItems))
			if err != nil {
				t.Fatalf("NewDatabase: %v", err)
			}
			if _, err := db.DB.ExecContext(ctx, "INSERT INTO items VALUES (1, 'a')"); err != nil {
				t.Fatalf("insert into the migrated table: %v", err)
			}
			var apps int
			if err := db.Admin.QueryRowContext(ctx,
				"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
				db.AppName, db.Name).Scan(&apps); err != nil {
				t.Fatalf("find the database's backends: %v", err)
			}
			if apps < 1 {
				t.Errorf("backends with application_name %q: got %d; want at least 1", db.AppName, apps)
			}
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if databaseExists(t, srv, db.Name) {
				t.Errorf("database %s still exists after Close", db.Name)
			}
		})
	}
}

// dockerImage is the image the docker provider test runs: SESSIONSAFE_PG_IMAGE, else the
// offline image of make pg-image.
func dockerImage() string {
	if img := os.Getenv(pgtest.EnvImage); img != "" {
		return img
	}
	return "sessionsafe/postgres:local"
}

// TestTemplateIsMigratedOnce builds one template from parallel tests of one server and from
// two servers sharing one Postgres (as parallel packages on one DSN do).
func TestTemplateIsMigratedOnce(t *testing.T) {
	base := sharedLocal(t)
	servers := []*pgtest.Server{
		startServer(t, pgtest.ProviderDSN, pgtest.WithDSN(base.DSN())),
		startServer(t, pgtest.ProviderDSN, pgtest.WithDSN(base.DSN())),
	}
	// A name of its own: the shared server keeps templates across -count runs.
	name := fmt.Sprintf("items-once-%d", time.Now().UnixNano())
	var runs atomic.Int32
	migrate := func(ctx context.Context, db *sql.DB) error {
		runs.Add(1)
		return migrateItems(ctx, db)
	}
	t.Run("group", func(t *testing.T) {
		for i := range 6 {
			t.Run(string(rune('a'+i)), func(t *testing.T) {
				t.Parallel()
				db := newDatabase(t, servers[i%2], pgtest.WithMigration(name, migrate))
				if _, err := db.DB.ExecContext(t.Context(), "INSERT INTO items VALUES (1, 'x')"); err != nil {
					t.Errorf("insert: %v", err)
				}
			})
		}
	})
	if got := runs.Load(); got != 1 {
		t.Errorf("migrations run: got %d; want 1", got)
	}
}

// TestFailedMigrationIsReported shows the error of a migration, and that no half-built
// template is left to clone.
func TestFailedMigrationIsReported(t *testing.T) {
	srv := sharedLocal(t)
	boom := errors.New("boom")
	name := fmt.Sprintf("broken-%d", time.Now().UnixNano()) // failures are kept per name and server
	_, err := srv.NewDatabase(t.Context(), pgtest.WithMigration(name, func(context.Context, *sql.DB) error { return boom }))
	if !errors.Is(err, boom) {
		t.Fatalf("NewDatabase with a failing migration: got %v; want an error wrapping %v", err, boom)
	}
}

// TestCloseReportsLeakedConnections plants a leak (a connection taken and never returned)
// and checks that Close forces the drop and says so.
func TestCloseReportsLeakedConnections(t *testing.T) {
	srv := sharedLocal(t)
	tests := []struct {
		name string
		leak bool
	}{
		{"no-leak", false},
		{"leaked-conn", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := srv.NewDatabase(t.Context())
			if err != nil {
				t.Fatalf("NewDatabase: %v", err)
			}
			if tt.leak {
				// A second pool whose connection is never returned: closing the database's
				// own pools does not end it.
				other, err := db.OpenDB()
				if err != nil {
					t.Fatalf("OpenDB: %v", err)
				}
				conn, err := other.Conn(t.Context())
				if err != nil {
					t.Fatalf("take a connection: %v", err)
				}
				t.Cleanup(func() { _ = conn.Close() })
				if err := conn.PingContext(t.Context()); err != nil {
					t.Fatalf("ping: %v", err)
				}
			}
			err = db.Close()
			if got := errors.Is(err, pgtest.ErrLeakedConnections); got != tt.leak {
				t.Errorf("Close() = %v; wraps ErrLeakedConnections: got %v; want %v", err, got, tt.leak)
			}
			if databaseExists(t, srv, db.Name) {
				t.Errorf("database %s still exists after Close", db.Name)
			}
		})
	}
}

// TestRestartAndPause restarts and pauses each provider that can, and checks the address
// still serves afterwards and that a paused server does not answer.
func TestRestartAndPause(t *testing.T) {
	tests := []struct {
		name  string
		start func(t *testing.T) *pgtest.Server
	}{
		{"local", func(t *testing.T) *pgtest.Server { return startServer(t, pgtest.ProviderLocal) }},
		{"docker", func(t *testing.T) *pgtest.Server {
			return startServer(t, pgtest.ProviderDocker, pgtest.WithImage(dockerImage()))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.start(t)
			db := newDatabase(t, srv)
			ctx := t.Context()
			if err := db.DB.PingContext(ctx); err != nil {
				t.Fatalf("ping before restart: %v", err)
			}
			if err := srv.Restart(ctx); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			// The pool's old connection is broken; database/sql retries on a fresh one.
			var one int
			if err := db.DB.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("query after restart: %v", err)
			}
			if err := srv.Pause(ctx); err != nil {
				t.Fatalf("Pause: %v", err)
			}
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err := db.DB.QueryRowContext(short, "SELECT 1").Scan(&one)
			cancel()
			if err == nil {
				t.Errorf("query on a paused server: got no error; want a timeout")
			}
			if err := srv.Resume(ctx); err != nil {
				t.Fatalf("Resume: %v", err)
			}
			if err := db.DB.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("query after resume: %v", err)
			}
			// Chaos calls these in any order: pausing twice, restarting a paused server and
			// resuming a running one all work.
			for i, step := range []func(context.Context) error{srv.Pause, srv.Pause, srv.Restart, srv.Resume, srv.Resume} {
				if err := step(ctx); err != nil {
					t.Fatalf("step %d of pause, pause, restart, resume, resume: %v", i, err)
				}
			}
			// The pool may hand out one connection the restart broke (see Restart's doc).
			if err := db.DB.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
				if err := db.DB.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
					t.Fatalf("query after restarting a paused server: %v", err)
				}
			}
		})
	}
}

// TestDSNProviderCannotRestart: an existing server is not pgtest's to restart.
func TestDSNProviderCannotRestart(t *testing.T) {
	srv := startServer(t, pgtest.ProviderDSN, pgtest.WithDSN(sharedLocal(t).DSN()))
	for name, f := range map[string]func(context.Context) error{"Restart": srv.Restart, "Pause": srv.Pause, "Resume": srv.Resume} {
		if err := f(t.Context()); !errors.Is(err, pgtest.ErrNotSupported) {
			t.Errorf("%s on dsn: got %v; want ErrNotSupported", name, err)
		}
	}
}
