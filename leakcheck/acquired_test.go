package leakcheck_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// WithAcquired checks any pool by its acquired count: here a pgxpool.Pool
// with one connection acquired and never released.
func TestAcquiredOnPgxpool(t *testing.T) {
	tests := []struct {
		name string
		leak bool
	}{{"clean", false}, {"conn-never-released", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newPG(t)
			pool, err := pgxpool.New(ctx(t), d.DSN)
			if err != nil {
				t.Fatalf("pgxpool: %v", err)
			}
			t.Cleanup(pool.Close)
			c, err := pool.Acquire(ctx(t))
			if err != nil {
				t.Fatalf("acquire: %v", err)
			}
			if tt.leak {
				t.Cleanup(c.Release)
			} else {
				c.Release()
			}
			err = leakcheck.Find(ctx(t), leakcheck.WithTimeout(short),
				leakcheck.WithAcquired("pgxpool", func() int { return int(pool.Stat().AcquiredConns()) }))
			if !tt.leak {
				if err != nil {
					t.Fatalf("Find on a clean pgxpool: %v", err)
				}
				return
			}
			mustContain(t, err, "[pool] pgxpool: 1 connection still acquired after")
		})
	}
}
