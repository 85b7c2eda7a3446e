package faults_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// The pass-through benchmarks time one query (QueryRow + Scan of one row)
// through the unwrapped driver ("raw"), through the bare driver wrapper
// with no hooks ("drvwrap"), and through an Injector with no plan armed
// ("injector": it records the trace), in the same run.

type wrapMode struct {
	name string
	wrap func(driver.Connector) driver.Connector
}

func wrapModes() []wrapMode {
	return []wrapMode{
		{"raw", func(c driver.Connector) driver.Connector { return c }},
		{"drvwrap", func(c driver.Connector) driver.Connector { return drvwrap.WrapConnector(c, drvwrap.Hooks{}) }},
		{"injector", func(c driver.Connector) driver.Connector { return faults.NewInjector().WrapConnector(c) }},
	}
}

func queryOne(b *testing.B, ctx context.Context, db *sql.DB) {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT n FROM items WHERE id = $1", 1).Scan(&n); err != nil {
		b.Fatal(err)
	}
}

type mockConnector struct {
	d   driver.Driver
	dsn string
}

func (c mockConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c mockConnector) Driver() driver.Driver                        { return c.d }

func BenchmarkPassThrough(b *testing.B) {
	b.Run("sqlmock", func(b *testing.B) {
		// sqlmock scans its expectations list on every call: a fresh mock
		// per batch keeps that cost small and equal for every mode.
		const batch = 64
		for _, m := range wrapModes() {
			b.Run(m.name, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				b.StopTimer()
				for done := 0; done < b.N; {
					dsn := fmt.Sprintf("bench_%d", time.Now().UnixNano())
					raw, mock, err := sqlmock.NewWithDSN(dsn)
					if err != nil {
						b.Fatal(err)
					}
					k := min(batch, b.N-done)
					for range k {
						mock.ExpectQuery("SELECT n").WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(int64(1)))
					}
					db := sql.OpenDB(m.wrap(mockConnector{raw.Driver(), dsn}))
					b.StartTimer()
					for range k {
						queryOne(b, ctx, db)
					}
					b.StopTimer()
					done += k
					_ = db.Close()
					_ = raw.Close()
				}
			})
		}
	})
	b.Run("postgres", func(b *testing.B) {
		pdb := pgtest.New(b, pgtest.WithMigration("faults-injector-items-v1", migrateInjItems))
		cfg, err := pgx.ParseConfig(pdb.DSN)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range wrapModes() {
			b.Run(m.name, func(b *testing.B) {
				db := sql.OpenDB(m.wrap(stdlib.GetConnector(*cfg)))
				defer db.Close()
				db.SetMaxOpenConns(1)
				ctx := context.Background()
				queryOne(b, ctx, db) // connect and prepare outside the timing
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					queryOne(b, ctx, db)
				}
			})
		}
	})
}

// BenchmarkPassThroughPaired alternates one query on the unwrapped pool and
// one on the wrapped pool in every iteration, so that the load of a shared
// machine hits both alike, and reports each side's time per query and the
// wrapper's overhead in percent.
func BenchmarkPassThroughPaired(b *testing.B) {
	pdb := pgtest.New(b, pgtest.WithMigration("faults-injector-items-v1", migrateInjItems))
	cfg, err := pgx.ParseConfig(pdb.DSN)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range wrapModes()[1:] {
		b.Run("postgres/"+m.name, func(b *testing.B) {
			raw := sql.OpenDB(stdlib.GetConnector(*cfg))
			defer raw.Close()
			wrapped := sql.OpenDB(m.wrap(stdlib.GetConnector(*cfg)))
			defer wrapped.Close()
			raw.SetMaxOpenConns(1)
			wrapped.SetMaxOpenConns(1)
			ctx := context.Background()
			queryOne(b, ctx, raw)
			queryOne(b, ctx, wrapped)
			var tRaw, tWrapped []time.Duration
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				// alternate which side goes first
				first, second := raw, wrapped
				if i%2 == 1 {
					first, second = wrapped, raw
				}
				t0 := time.Now()
				queryOne(b, ctx, first)
				t1 := time.Now()
				queryOne(b, ctx, second)
				t2 := time.Now()
				if first == raw {
					tRaw, tWrapped = append(tRaw, t1.Sub(t0)), append(tWrapped, t2.Sub(t1))
				} else {
					tWrapped, tRaw = append(tWrapped, t1.Sub(t0)), append(tRaw, t2.Sub(t1))
				}
			}
			mr, mw := median(tRaw), median(tWrapped)
			b.ReportMetric(float64(mr.Nanoseconds()), "raw-median-ns")
			b.ReportMetric(float64(mw.Nanoseconds()), "wrapped-median-ns")
			b.ReportMetric(100*(float64(mw)-float64(mr))/float64(mr), "overhead-%")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// nopDriver answers every query with one row and every exec with one row
// affected, in memory: the "nop" benchmarks time the wrappers' own CPU cost
// per query, free of network and server noise.
type nopDriver struct{}
type nopConn struct{}
type nopRows struct{ done bool }

func (nopDriver) Open(string) (driver.Conn, error)       { return nopConn{}, nil }
func (nopConn) Prepare(string) (driver.Stmt, error)      { return nil, driver.ErrSkip }
func (nopConn) Close() error                             { return nil }
func (nopConn) Begin() (driver.Tx, error)                { return nil, driver.ErrSkip }
func (nopConn) ResetSession(context.Context) error       { return nil }
func (nopConn) CheckNamedValue(*driver.NamedValue) error { return nil }
func (nopConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}
func (nopConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return &nopRows{}, nil
}
func (*nopRows) Columns() []string { return []string{"n"} }
func (*nopRows) Close() error      { return nil }
func (r *nopRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(1)
	return nil
}

func BenchmarkPassThroughNop(b *testing.B) {
	for _, m := range wrapModes() {
		b.Run(m.name, func(b *testing.B) {
			db := sql.OpenDB(m.wrap(mockConnector{nopDriver{}, ""}))
			defer db.Close()
			db.SetMaxOpenConns(1)
			ctx := context.Background()
			queryOne(b, ctx, db)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				queryOne(b, ctx, db)
			}
		})
	}
}
