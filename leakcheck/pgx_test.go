package leakcheck_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// WithPgxPool with a PgxTracker names where a connection still acquired was
// taken, and the transaction it holds; External reports a transaction held
// across the call.
func TestPgxTracker(t *testing.T) {
	tests := []struct {
		name string
		leak func(t *testing.T, pool *pgxpool.Pool) // leaves what it leaks to cleanup
		want []string
	}{
		{"clean", func(t *testing.T, pool *pgxpool.Pool) {
			if err := pgx.BeginFunc(ctx(t), pool, func(tx pgx.Tx) error { _, err := tx.Exec(ctx(t), "SELECT 1"); return err }); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"conn-never-released", func(t *testing.T, pool *pgxpool.Pool) {
			c, err := pool.Acquire(ctx(t)) // the leak
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Release)
		}, []string{"[pool] pgxpool", "1 connection still acquired", "acquired", "by leakcheck_test.TestPgxTracker.func2 at leakcheck/pgx_test.go:28"}},
		{"tx-never-ended", func(t *testing.T, pool *pgxpool.Pool) {
			tx, err := pool.Begin(ctx(t)) // the leak
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		}, []string{"1 connection still acquired", "pgx_test.go:35", "holding a transaction begun"}},
		{"tx-across-external", func(t *testing.T, pool *pgxpool.Pool) {
			tx, err := pool.Begin(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx(t)) }()
			tr := trackerOf(t)
			_ = tr.External(ctx(t), "mail", func(context.Context) error { return nil })
		}, []string{"[long-transaction]", `external call "mail"`, "pgx_test.go:42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newPG(t)
			cfg, err := pgxpool.ParseConfig(d.DSN)
			if err != nil {
				t.Fatal(err)
			}
			tr := leakcheck.NewPgxTracker()
			tr.Install(cfg)
			pool, err := pgxpool.NewWithConfig(ctx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close) // after the leak's own cleanup has released it
			trackers[t.Name()] = tr
			tt.leak(t, pool)
			err = leakcheck.Find(ctx(t), leakcheck.WithTimeout(short), leakcheck.WithPgxPool(pool, tr))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Find on a clean pool: %v", err)
				}
				return
			}
			for _, w := range tt.want {
				mustContain(t, err, w)
			}
		})
	}
}

// trackers are the PgxTrackers of the running subtests, by name.
var trackers = map[string]*leakcheck.PgxTracker{}

func trackerOf(t *testing.T) *leakcheck.PgxTracker { return trackers[t.Name()] }
