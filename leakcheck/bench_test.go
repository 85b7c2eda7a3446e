package leakcheck_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// A minimal in-memory driver: every query returns one row, so a benchmark
// measures database/sql and the tracker, not a mock's matching.
type fakeConnector struct{}

func (fakeConnector) Connect(context.Context) (driver.Conn, error) { return fakeConn{}, nil }
func (fakeConnector) Driver() driver.Driver                        { return nil }

type fakeConn struct{}

func (fakeConn) Prepare(string) (driver.Stmt, error) { return nil, driver.ErrSkip }
func (fakeConn) Close() error                        { return nil }
func (fakeConn) Begin() (driver.Tx, error)           { return fakeTx{}, nil }
func (fakeConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	return fakeTx{}, nil
}
func (fakeConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return &fakeRows{}, nil
}
func (fakeConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}
func (fakeConn) ResetSession(context.Context) error { return nil }

type fakeTx struct{}

func (fakeTx) Commit() error   { return nil }
func (fakeTx) Rollback() error { return nil }

type fakeRows struct{ done bool }

func (*fakeRows) Columns() []string { return []string{"x"} }
func (*fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(1)
	return nil
}

func openFake(b *testing.B, tr *leakcheck.Tracker) *sql.DB {
	b.Helper()
	var c driver.Connector = fakeConnector{}
	if tr != nil {
		c = tr.WrapConnector(c)
	}
	db := sql.OpenDB(c)
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// queryTx is one unit of work: begin, one query read to the end, commit.
func queryTx(b *testing.B, db *sql.DB) {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	var x int
	if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&x); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTracking measures the tracker's cost per unit of work (begin,
// query, next, close, commit) on an in-memory driver, where nothing hides it.
func BenchmarkTracking(b *testing.B) {
	for _, tt := range []struct {
		name    string
		tracker bool
	}{{"untracked", false}, {"tracked", true}} {
		b.Run(tt.name, func(b *testing.B) {
			var tr *leakcheck.Tracker
			if tt.tracker {
				tr = leakcheck.NewTracker()
			}
			db := openFake(b, tr)
			b.ReportAllocs()
			for b.Loop() {
				queryTx(b, db)
			}
		})
	}
}

// BenchmarkTrackingPostgres is BenchmarkTracking on real Postgres.
func BenchmarkTrackingPostgres(b *testing.B) {
	d := newPG(b)
	for _, tt := range []struct {
		name    string
		tracker bool
	}{{"untracked", false}, {"tracked", true}} {
		b.Run(tt.name, func(b *testing.B) {
			cfg, err := pgx.ParseConfig(d.DSN)
			if err != nil {
				b.Fatal(err)
			}
			var c driver.Connector = stdlib.GetConnector(*cfg)
			if tt.tracker {
				c = leakcheck.NewTracker().WrapConnector(c)
			}
			db := sql.OpenDB(c)
			b.Cleanup(func() { _ = db.Close() })
			b.ReportAllocs()
			for b.Loop() {
				queryTx(b, db)
			}
		})
	}
}

// BenchmarkChecksClean measures each check on a clean run.
func BenchmarkChecksClean(b *testing.B) {
	ctx := context.Background()
	b.Run("pool", func(b *testing.B) {
		tr := leakcheck.NewTracker()
		db := openFake(b, tr)
		queryTx(b, db)
		for b.Loop() {
			if err := leakcheck.FindPool(ctx, db, leakcheck.WithTracker(tr)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goroutines", func(b *testing.B) {
		base := goleak.IgnoreCurrent()
		for b.Loop() {
			if err := leakcheck.FindGoroutines(ctx, base); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scope", func(b *testing.B) {
		s := leakcheck.EnterScope(context.Background())
		defer s.Exit()
		for b.Loop() {
			if err := leakcheck.FindScope(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("long-transactions", func(b *testing.B) {
		tr := leakcheck.NewTracker()
		db := openFake(b, tr)
		queryTx(b, db)
		for b.Loop() {
			if err := leakcheck.FindLongTransactions(ctx, tr, leakcheck.WithLongTransaction(1e9)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("server", func(b *testing.B) {
		d := newPG(b)
		queryTx(b, d.DB)
		for b.Loop() {
			if err := leakcheck.FindServer(ctx, d.Admin, d.AppName); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("session", func(b *testing.B) {
		d := newPG(b)
		d.DB.SetMaxOpenConns(1)
		before, err := leakcheck.SnapshotSession(ctx, d.DB)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := leakcheck.FindSession(ctx, d.DB, before); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("all-on-postgres", func(b *testing.B) {
		d := newPG(b)
		tr := leakcheck.NewTracker()
		db := trackedPool(b, d, tr)
		queryTx(b, db)
		base := goleak.IgnoreCurrent()
		for b.Loop() {
			err := leakcheck.Find(ctx, leakcheck.WithDB(db), leakcheck.WithTracker(tr),
				leakcheck.WithServer(d.Admin, d.AppName), leakcheck.WithGoroutines(base),
				leakcheck.WithLongTransaction(1e9))
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
