package leakcheck_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// openTracked opens a sqlmock pool through tr (the examples' stand-in for
// sql.OpenDB(tr.WrapConnector(connector)) on a real driver).
func openTracked(tr *leakcheck.Tracker, name string) (*sql.DB, sqlmock.Sqlmock, func()) {
	raw, mock, err := sqlmock.NewWithDSN(name, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		panic(err)
	}
	c, err := tr.WrapDriver(raw.Driver()).(driver.DriverContext).OpenConnector(name)
	if err != nil {
		panic(err)
	}
	db := sql.OpenDB(c)
	return db, mock, func() { _ = db.Close(); _ = raw.Close() }
}

var durations = regexp.MustCompile(`[0-9.]+(ms|µs|s)\b`)

// stable replaces durations, which vary from run to run.
func stable(s string) string { return durations.ReplaceAllString(s, "N") }

// listThreads is the code under test: it forgets to close its rows.
func listThreads(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT id, title FROM threads WHERE user_id = $1", "u1")
	if err != nil {
		return err
	}
	_ = rows // rows.Close() missing
	return nil
}

// Find with a Tracker names where the connection still in use was taken,
// and what it still holds.
func ExampleFind() {
	ctx := context.Background()
	tr := leakcheck.NewTracker()
	db, mock, closeDB := openTracked(tr, "example-find")
	defer closeDB()
	mock.ExpectQuery("SELECT id, title FROM threads WHERE user_id = $1").WithArgs("u1").
		WillReturnRows(sqlmock.NewRows([]string{"id", "title"}).AddRow("t1", "hello"))

	_ = listThreads(ctx, db)

	err := leakcheck.Find(ctx, leakcheck.WithDB(db), leakcheck.WithTracker(tr), leakcheck.WithTimeout(50*time.Millisecond))
	fmt.Println(errors.Is(err, leakcheck.ErrLeak))
	fmt.Println(stable(err.Error()))
	// Output:
	// true
	// leakcheck: 1 leak found:
	// [pool] 1 connection still in use after N (1 open, 0 idle): it was never given back to the pool (rows not closed, a transaction not ended, a *sql.Conn not closed)
	//     connection #1 acquired N ago by leakcheck_test.listThreads at leakcheck/example_test.go:40
	//         called from leakcheck_test.ExampleFind at leakcheck/example_test.go:58
	//       holding rows of `SELECT id, title FROM threads WHERE user_id = $1` opened N ago there
}

// FindGoroutines compares the goroutines with a baseline taken before the
// code under test ran.
func ExampleFindGoroutines() {
	base := goleak.IgnoreCurrent()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); <-quit }() // outlives the "call"

	err := leakcheck.FindGoroutines(context.Background(), base)
	fmt.Println(leakcheck.Has(err, leakcheck.CheckGoroutines))

	close(quit)
	<-done
	fmt.Println(leakcheck.FindGoroutines(context.Background(), base))
	// Output:
	// true
	// <nil>
}

// A transaction held across a call to something outside the database (here
// a title generator) is a long-transaction finding.
func ExampleTracker_External() {
	ctx := context.Background()
	tr := leakcheck.NewTracker()
	db, mock, closeDB := openTracked(tr, "example-external")
	defer closeDB()
	mock.ExpectBegin()
	mock.ExpectCommit()

	tx, _ := db.BeginTx(ctx, nil)
	_ = tr.External(ctx, "title generator", func(context.Context) error { return nil })
	_ = tx.Commit()

	err := leakcheck.FindLongTransactions(ctx, tr)
	var le *leakcheck.Error
	if errors.As(err, &le) {
		for _, f := range le.Findings {
			fmt.Println(f.Check, stable(f.Summary))
		}
	}
	// Output:
	// long-transaction a transaction was held across the external call "title generator" (N): no transaction may stay open while the code waits on something outside the database
}

// Session.Diff lists what a connection carries for its next user; in a test
// the snapshots come from SnapshotSession on a *sql.Conn or a pool of one.
func ExampleSession_Diff() {
	before := leakcheck.Session{PID: 42, BackendStart: "2026-01-01 00:00:00+00"}
	after := before
	after.Settings = []string{"statement_timeout=5s"}
	after.AdvisoryLocks = []string{"77 ExclusiveLock"}
	for _, d := range before.Diff(after) {
		fmt.Println(d)
	}
	// Output:
	// setting statement_timeout=5s set for the whole session (SET without LOCAL, or set_config(..., false))
	// advisory lock 77 ExclusiveLock still held (pg_advisory_lock without pg_advisory_unlock)
}

// A Scope marks the goroutines the code under test starts, so the check
// works next to tests running in parallel.
func ExampleEnterScope() {
	ctx := context.Background()
	s := leakcheck.EnterScope(ctx)
	defer s.Exit()

	quit, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); <-quit }() // outlives the "call"

	err := leakcheck.FindScope(ctx, s, leakcheck.WithTimeout(20*time.Millisecond))
	var le *leakcheck.Error
	if errors.As(err, &le) {
		fmt.Println(le.Findings[0].Check)
	}
	close(quit)
	<-done
	fmt.Println(leakcheck.FindScope(ctx, s))
	// Output:
	// goroutines
	// <nil>
}
