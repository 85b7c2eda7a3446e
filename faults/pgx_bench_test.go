package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// BenchmarkPgxInjectorPaired times one pgxpool query (QueryRow + Scan of
// one row, a prepared statement's Bind/Describe/Execute/Sync) on a plain
// pool and on a pool whose wire a faults.PgxInjector with no plan records
// (one step per query), alternating the two in each iteration, and reports
// the medians of each side and the overhead.
func BenchmarkPgxInjectorPaired(b *testing.B) {
	pdb := pgtest.New(b, pgtest.WithMigration("faults-injector-items-v1", migrateInjItems))
	open := func(inj *faults.PgxInjector) *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(pdb.DSN)
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = 1
		if inj != nil {
			inj.Install(&cfg.ConnConfig.Config)
		}
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		return pool
	}
	raw := open(nil)
	defer raw.Close()
	inj := faults.NewPgxInjector()
	wired := open(inj)
	defer wired.Close()
	ctx := context.Background()
	query := func(p *pgxpool.Pool) {
		var n int
		if err := p.QueryRow(ctx, "SELECT n FROM items WHERE id = $1", 1).Scan(&n); err != nil {
			b.Fatal(err)
		}
	}
	query(raw)
	query(wired)
	var tRaw, tWired []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%4096 == 0 {
			inj.Reset() // keep the trace short, as a matrix case does
		}
		first, second := raw, wired
		if i%2 == 1 {
			first, second = wired, raw
		}
		t0 := time.Now()
		query(first)
		t1 := time.Now()
		query(second)
		t2 := time.Now()
		if first == raw {
			tRaw, tWired = append(tRaw, t1.Sub(t0)), append(tWired, t2.Sub(t1))
		} else {
			tWired, tRaw = append(tWired, t1.Sub(t0)), append(tRaw, t2.Sub(t1))
		}
	}
	mr, mw := median(tRaw), median(tWired)
	b.ReportMetric(float64(mr.Nanoseconds()), "raw-median-ns")
	b.ReportMetric(float64(mw.Nanoseconds()), "wired-median-ns")
	b.ReportMetric(100*(float64(mw)-float64(mr))/float64(mr), "overhead-%")
}
