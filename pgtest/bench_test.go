package pgtest_test

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// quiet keeps server start lines out of the benchmark output.
var quiet = pgtest.WithLogger(slog.New(slog.DiscardHandler))

// benchProviders are the providers that start servers of their own.
func benchProviders() []struct {
	name string
	opts []pgtest.Option
} {
	return []struct {
		name string
		opts []pgtest.Option
	}{
		{pgtest.ProviderLocal, []pgtest.Option{pgtest.WithProvider(pgtest.ProviderLocal), quiet}},
		{pgtest.ProviderDocker, []pgtest.Option{pgtest.WithProvider(pgtest.ProviderDocker), pgtest.WithImage(dockerImage()), quiet}},
	}
}

// BenchmarkProviderReady measures how long a provider takes until the server accepts
// connections: cold is a new server (a new cluster, or a new container running initdb
// inside), warm is a restart of an existing one (its data in place). For local, cold is
// measured from the initdb cache and without it (initdb every time).
func BenchmarkProviderReady(b *testing.B) {
	for _, p := range benchProviders() {
		b.Run(p.name+"/cold", func(b *testing.B) { benchCold(b, p.opts) })
		if p.name == pgtest.ProviderLocal {
			b.Run(p.name+"/cold-no-initdb-cache", func(b *testing.B) {
				b.Setenv(pgtest.EnvInitdbCache, "0")
				benchCold(b, p.opts)
			})
		}
		b.Run(p.name+"/warm", func(b *testing.B) {
			srv := startServer(b, p.name, p.opts...)
			ctx := context.Background()
			for b.Loop() {
				if err := srv.Restart(ctx); err != nil {
					b.Fatalf("restart: %v", err)
				}
			}
		})
	}
}

func benchCold(b *testing.B, opts []pgtest.Option) {
	ctx := context.Background()
	for b.Loop() {
		srv, err := pgtest.Start(ctx, opts...)
		if err != nil {
			b.Skipf("provider cannot serve here: %v", err)
		}
		b.StopTimer()
		if err := srv.Close(); err != nil {
			b.Fatalf("close: %v", err)
		}
		b.StartTimer()
	}
}

// migrateBench is a schema of a realistic size for the clone benchmark: a few tables,
// indexes and a function.
func migrateBench(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `
CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL);
CREATE TABLE threads (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL REFERENCES users,
	title text NOT NULL DEFAULT '', metadata jsonb NOT NULL DEFAULT '{}', archived_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON threads (user_id, updated_at DESC);
CREATE TABLE messages (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), thread_id uuid NOT NULL REFERENCES threads,
	seq bigint NOT NULL, role text NOT NULL, content text NOT NULL, client_message_id text,
	created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (thread_id, seq), UNIQUE (thread_id, client_message_id));
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at = now(); RETURN NEW; END $$;
CREATE TRIGGER threads_touch BEFORE UPDATE ON threads FOR EACH ROW EXECUTE FUNCTION touch();`)
	return err
}

// BenchmarkNewDatabase measures one test's database: clone from the migrated template
// (create), and close (pools closed, DROP DATABASE).
func BenchmarkNewDatabase(b *testing.B) {
	for _, p := range benchProviders() {
		b.Run(p.name, func(b *testing.B) {
			srv := startServer(b, p.name, p.opts...)
			ctx := context.Background()
			mig := pgtest.WithMigration("bench-v1", migrateBench)
			warm, err := srv.NewDatabase(ctx, mig) // builds the template outside the timing
			if err != nil {
				b.Fatalf("new database: %v", err)
			}
			if err := warm.Close(); err != nil {
				b.Fatalf("close: %v", err)
			}
			b.Run("create", func(b *testing.B) {
				for b.Loop() {
					db, err := srv.NewDatabase(ctx, mig)
					if err != nil {
						b.Fatalf("new database: %v", err)
					}
					b.StopTimer()
					if err := db.Close(); err != nil {
						b.Fatalf("close: %v", err)
					}
					b.StartTimer()
				}
			})
			b.Run("create+first-query+drop", func(b *testing.B) {
				for b.Loop() {
					db, err := srv.NewDatabase(ctx, mig)
					if err != nil {
						b.Fatalf("new database: %v", err)
					}
					if err := db.DB.PingContext(ctx); err != nil {
						b.Fatalf("ping: %v", err)
					}
					if err := db.Close(); err != nil {
						b.Fatalf("close: %v", err)
					}
				}
			})
		})
	}
}
