package faults_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
)

// openMockInjected opens a pool on a fresh sqlmock through inj.
func openMockInjected(tb testing.TB, inj *faults.Injector) (*sql.DB, sqlmock.Sqlmock) {
	tb.Helper()
	dsn := fmt.Sprintf("faults_%s_%d", tb.Name(), time.Now().UnixNano())
	raw, mock, err := sqlmock.NewWithDSN(dsn)
	if err != nil {
		tb.Fatalf("sqlmock: %v", err)
	}
	tb.Cleanup(func() { _ = raw.Close() })
	c, err := inj.WrapDriver(raw.Driver()).(driver.DriverContext).OpenConnector(dsn)
	if err != nil {
		tb.Fatalf("open connector: %v", err)
	}
	db := sql.OpenDB(c)
	tb.Cleanup(func() { _ = db.Close() })
	return db, mock
}

// txOp is a small unit of work as the handlers write it: begin, update,
// read back, commit; roll back on any error or panic.
func txOp(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, "UPDATE items SET n = n + 1 WHERE id = $1", 1); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT n FROM items WHERE id = $1", 1).Scan(&n); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// expectTxOp scripts sqlmock for the first reached calls of txOp (begin,
// exec, query, commit) and, when rollback is set, a rollback.
func expectTxOp(mock sqlmock.Sqlmock, reached int, rollback bool) {
	calls := []func(){
		func() { mock.ExpectBegin() },
		func() {
			mock.ExpectExec("UPDATE items").WithArgs(1).WillReturnResult(sqlmock.NewResult(0, 1))
		},
		func() {
			mock.ExpectQuery("SELECT n FROM items").WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(int64(42)))
		},
		func() { mock.ExpectCommit() },
	}
	for _, c := range calls[:reached] {
		c()
	}
	if rollback {
		mock.ExpectRollback()
	}
}

func pgErrCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestInjectorRecordsTrace(t *testing.T) {
	inj := faults.NewInjector()
	db, mock := openMockInjected(t, inj)
	expectTxOp(mock, 4, false)
	if err := txOp(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	tr := inj.Trace()
	want := []string{
		"  1 connect    conn=1",
		"  2 begin      conn=1",
		"  3 exec       conn=1 UPDATE items SET n = n + ? WHERE id = $1 args=1 -> 1 affected",
		"  4 query      conn=1 SELECT n FROM items WHERE id = $1 args=1 -> 1 row(s) [n]",
		"  5 next       conn=1 [42]",
		"  6 rows-close conn=1",
		"  7 commit     conn=1",
	}
	got := strings.Split(strings.TrimSuffix(tr.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("trace:\n%s\nwant:\n%s", tr, strings.Join(want, "\n"))
	}
	if q := tr[3]; len(q.Rows) != 1 || q.Rows[0][0] != int64(42) || q.Args != 1 || q.SQL != "SELECT n FROM items WHERE id = $1" {
		t.Errorf("query step = %+v; want its row [42], 1 arg and its SQL", q)
	}
	if e := tr[2]; e.RowsAffected != 1 {
		t.Errorf("exec step RowsAffected = %d; want 1", e.RowsAffected)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestInjectorBoundsRows(t *testing.T) {
	inj := faults.NewInjector(faults.WithMaxRows(2))
	db, mock := openMockInjected(t, inj)
	mock.ExpectQuery("SELECT").WillReturnRows(sqlmock.NewRows([]string{"b"}).AddRow([]byte("a")).AddRow([]byte("b")).AddRow([]byte("c")))
	rows, err := db.Query("SELECT b FROM t")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	q := inj.Trace()[1]
	if n != 3 || len(q.Rows) != 2 || !q.Truncated || string(q.Rows[1][0].([]byte)) != "b" {
		t.Errorf("read %d rows; query step kept %v truncated=%v; want 3 read, [[a] [b]] kept, truncated", n, q.Rows, q.Truncated)
	}
}

type faultCase struct {
	name     string
	plan     string
	reached  int  // txOp calls that reach sqlmock
	rollback bool // whether the rollback reaches sqlmock
	atStep   int  // the step the rule fires at
	ctx      func(*faults.Injector) (context.Context, context.CancelFunc)
	check    func(t *testing.T, err error)
}

func wantPrefix(t *testing.T, err error, prefix string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("got error %v; want one from %q", err, strings.TrimSuffix(prefix, ":"))
	}
}

func wantPg(prefix, code, severity string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		wantPrefix(t, err, prefix)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("errors.As(%v, *pgconn.PgError) = false", err)
		}
		if pe.Code != code || pe.Severity != severity {
			t.Errorf("PgError code %s severity %s; want %s %s", pe.Code, pe.Severity, code, severity)
		}
	}
}

func wantIs(prefix string, target error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		wantPrefix(t, err, prefix)
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
}

func TestInjectorFaultsOnSqlmock(t *testing.T) {
	tests := []faultCase{
		{name: "error/exec", plan: "step=3:error", reached: 1, rollback: true, atStep: 3, check: wantIs("exec:", faults.ErrInjected)},
		{name: "pgerr-40001/exec", plan: "match=exec#1:pgerr=40001", reached: 1, rollback: true, atStep: 3, check: wantPg("exec:", "40001", "ERROR")},
		{name: "pgerr-40P01/exec", plan: "match=exec~UPDATE items#1:pgerr=40P01", reached: 1, rollback: true, atStep: 3, check: wantPg("exec:", "40P01", "ERROR")},
		{name: "pgerr-23505/exec", plan: "step=3:pgerr=23505", reached: 1, rollback: true, atStep: 3, check: wantPg("exec:", "23505", "ERROR")},
		{name: "pgerr-57014/query", plan: "match=query#1:pgerr=57014", reached: 2, rollback: true, atStep: 4, check: wantPg("query:", "57014", "ERROR")},
		{name: "pgerr-08006/next", plan: "match=next#1:pgerr=08006", reached: 3, rollback: false, atStep: 5, check: wantPg("query:", "08006", "FATAL")},
		{name: "pgerr-57P01/commit", plan: "match=commit#1:pgerr=57P01", reached: 3, rollback: false, atStep: 7, check: wantPg("commit:", "57P01", "FATAL")},
		{name: "pgerr-53300/connect", plan: "step=1:pgerr=53300", reached: 0, rollback: false, atStep: 1, check: wantPg("begin:", "53300", "FATAL")},
		{name: "badconn/exec", plan: "match=exec#1:badconn", reached: 1, rollback: false, atStep: 3, check: wantIs("exec:", driver.ErrBadConn)},
		{name: "badconn/commit", plan: "match=commit#1:badconn", reached: 3, rollback: false, atStep: 7, check: wantIs("commit:", driver.ErrBadConn)},
		{name: "badconn/begin-retried", plan: "match=begin#1:badconn", reached: 4, rollback: false, atStep: 2, check: func(t *testing.T, err error) {
			if err != nil {
				t.Errorf("got %v; want database/sql to retry the bad conn's begin on a new conn and succeed", err)
			}
		}},
		{name: "cancel/query", plan: "match=query#1:cancel", reached: 2, rollback: false, atStep: 4, check: wantIs("query:", context.Canceled),
			ctx: func(inj *faults.Injector) (context.Context, context.CancelFunc) {
				return inj.Context(context.Background())
			}},
		{name: "cancel/plain-context", plan: "match=query#1:cancel", reached: 2, rollback: true, atStep: 4, check: func(t *testing.T, err error) {
			wantIs("query:", context.Canceled)(t, err)
			if !strings.Contains(err.Error(), "Injector.Context") || !errors.Is(err, faults.ErrForeignContext) {
				t.Errorf("error %v does not say the context must come from Injector.Context (errors.Is faults.ErrForeignContext)", err)
			}
		}},
		{name: "latency/commit", plan: "match=commit#1:latency=1ms", reached: 4, rollback: false, atStep: 7, check: func(t *testing.T, err error) {
			if err != nil {
				t.Errorf("got %v; want the commit to go on after the delay", err)
			}
		}},
		{name: "latency/honours-context", plan: "step=3:latency=1h", reached: 1, rollback: false, atStep: 3, check: wantIs("exec:", context.DeadlineExceeded),
			ctx: func(*faults.Injector) (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			}},
		{name: "cut/without-wire", plan: "match=commit#1:ambiguous", reached: 3, rollback: false, atStep: 7, check: wantIs("commit:", faults.ErrNeedsMechanism)},
		{name: "terminate/without-server", plan: "step=3:terminate", reached: 1, rollback: true, atStep: 3, check: wantIs("exec:", faults.ErrNeedsMechanism)},
		{name: "first-rule-wins", plan: "step=3:error,match=exec#1:badconn", reached: 1, rollback: true, atStep: 3, check: wantIs("exec:", faults.ErrInjected)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inj := faults.NewInjector()
			db, mock := openMockInjected(t, inj)
			expectTxOp(mock, tt.reached, tt.rollback)
			inj.Arm(faults.MustParsePlan(tt.plan))
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx(inj)
			}
			defer cancel()
			err := txOp(ctx, db)
			tt.check(t, err)
			checkFired(t, inj, tt.atStep)
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Errorf("sqlmock: %v", err)
			}
			waitIdle(t, db)
		})
	}
}

// checkFired checks exactly one rule fired, at step, and every step before
// it behaved normally.
func checkFired(t *testing.T, inj *faults.Injector, step int) {
	t.Helper()
	fired := inj.Fired()
	if len(fired) != 1 || fired[0].Step.Index != step {
		t.Fatalf("fired %v; want one firing at step %d\ntrace:\n%s", fired, step, inj.Trace())
	}
	tr := inj.Trace()
	for _, st := range tr[:step-1] {
		if st.Err != nil && st.Err != io.EOF || st.Fault != nil {
			t.Errorf("step %d before the fault did not behave normally: %s", st.Index, st)
		}
	}
	if tr[step-1].Fault == nil || *tr[step-1].Fault != fired[0].Rule.Fault {
		t.Errorf("trace step %d does not show the fault: %s", step, tr[step-1])
	}
}

var driverErrBadConn = driver.ErrBadConn

// waitIdle polls until the pool has no conn in use, failing at the deadline.
func waitIdle(t *testing.T, db *sql.DB) {
	t.Helper()
	testkit.EventuallyNil(t, func() error {
		if n := db.Stats().InUse; n != 0 {
			return fmt.Errorf("%d connection(s) still in use; want 0", n)
		}
		return nil
	}, "the pool to have every connection back")
}

// TestInjectorPanic checks a panic at the steps Applicable offers it leaves
// database/sql able to roll back and give the conn back.
func TestInjectorPanic(t *testing.T) {
	tests := []struct {
		name    string
		plan    string
		reached int
		step    int
		kind    faults.StepKind
	}{
		{"exec", "match=exec#1:panic", 1, 3, faults.StepExec},
		{"next", "match=next#1:panic", 3, 5, faults.StepNext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inj := faults.NewInjector()
			db, mock := openMockInjected(t, inj)
			expectTxOp(mock, tt.reached, true)
			inj.Arm(faults.MustParsePlan(tt.plan))
			var p any
			func() {
				defer func() { p = recover() }()
				_ = txOp(context.Background(), db)
			}()
			ip, ok := p.(*faults.InjectedPanic)
			if !ok || ip.Step != tt.step || ip.Kind != tt.kind {
				t.Fatalf("recovered %#v; want *faults.InjectedPanic at step %d (%s)", p, tt.step, tt.kind)
			}
			checkFired(t, inj, tt.step)
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
			waitIdle(t, db)
		})
	}
}

func TestInjectorBadConnIsDiscarded(t *testing.T) {
	inj := faults.NewInjector()
	db, mock := openMockInjected(t, inj)
	expectTxOp(mock, 1, false)
	expectTxOp(mock, 4, false)
	inj.Arm(faults.MustParsePlan("match=exec#1:badconn"))
	if err := txOp(context.Background(), db); !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("first run: %v; want driver.ErrBadConn", err)
	}
	if err := txOp(context.Background(), db); err != nil {
		t.Fatalf("second run: %v; want success on a new conn", err)
	}
	var closed, conns []uint64
	for _, st := range inj.Trace() {
		switch st.Kind {
		case faults.StepClose:
			closed = append(closed, st.Conn)
		case faults.StepConnect:
			conns = append(conns, st.Conn)
		}
	}
	if fmt.Sprint(closed) != "[1]" || fmt.Sprint(conns) != "[1 2]" {
		t.Errorf("closed conns %v, connected %v; want conn 1 closed and conn 2 opened\n%s", closed, conns, inj.Trace())
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestInjectorConcurrent(t *testing.T) {
	inj := faults.NewInjector()
	db, mock := openMockInjected(t, inj)
	mock.MatchExpectationsInOrder(false)
	const workers = 8
	for range workers {
		mock.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	}
	inj.Arm(faults.MustParsePlan("match=exec#3:pgerr=40001"))
	errs := testkit.FanOut(workers, func(int) error {
		_, err := db.Exec("UPDATE items SET n = 0")
		return err
	})
	var failed int
	for _, err := range errs {
		if err != nil {
			failed++
			if pgErrCode(err) != "40001" {
				t.Errorf("unexpected error %v", err)
			}
		}
	}
	if failed != 1 || len(inj.Fired()) != 1 {
		t.Errorf("%d execs failed, %d firings; want exactly 1 of each", failed, len(inj.Fired()))
	}
}

func TestInjectorArmRestartsCounting(t *testing.T) {
	inj := faults.NewInjector()
	db, mock := openMockInjected(t, inj)
	expectTxOp(mock, 4, false)
	expectTxOp(mock, 1, true)
	if err := txOp(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	inj.Arm(faults.MustParsePlan("step=2:error"))
	if err := txOp(context.Background(), db); !errors.Is(err, faults.ErrInjected) || !strings.HasPrefix(err.Error(), "exec:") {
		t.Fatalf("got %v; want the injected error at the exec, step 2 after Arm (the pooled conn needs no connect)", err)
	}
	if tr := inj.Trace(); tr[0].Kind != faults.StepBegin || tr[0].Index != 1 {
		t.Errorf("trace after Arm starts with %s; want step 1 begin", tr[0])
	}
	inj.Reset()
	if len(inj.Trace()) != 0 || len(inj.Fired()) != 0 {
		t.Errorf("Reset left a trace or firings")
	}
}

func TestInjectorMaxSteps(t *testing.T) {
	inj := faults.NewInjector(faults.WithMaxSteps(3))
	db, mock := openMockInjected(t, inj)
	expectTxOp(mock, 3, false)
	inj.Arm(faults.MustParsePlan("step=7:pgerr=40001"))
	if err := txOp(context.Background(), db); pgErrCode(err) != "40001" {
		t.Fatalf("got %v; want the fault at step 7 although the trace keeps 3 steps", err)
	}
	if tr := inj.Trace(); len(tr) != 3 {
		t.Errorf("trace kept %d steps; want 3", len(tr))
	}
	if f := inj.Fired(); len(f) != 1 || f[0].Step.Index != 7 {
		t.Errorf("fired %v; want one firing at step 7", f)
	}
}

func TestInjectorConnIDsUniqueAcrossConnectors(t *testing.T) {
	inj := faults.NewInjector()
	db1, mock1 := openMockInjected(t, inj)
	db2, mock2 := openMockInjected(t, inj)
	for _, m := range []sqlmock.Sqlmock{mock1, mock2} {
		m.ExpectExec("UPDATE").WillReturnResult(sqlmock.NewResult(0, 1))
	}
	for _, db := range []*sql.DB{db1, db2} {
		if _, err := db.Exec("UPDATE items SET n = 0"); err != nil {
			t.Fatal(err)
		}
	}
	var conns []uint64
	for _, st := range inj.Trace() {
		if st.Kind == faults.StepConnect {
			conns = append(conns, st.Conn)
		}
	}
	if fmt.Sprint(conns) != "[1 2]" {
		t.Errorf("connect steps on conns %v; want [1 2] over both connectors", conns)
	}
}

// continueAfterError is the bug an aborted transaction shows up: it ignores
// the first exec's error, goes on in the transaction and commits. It
// returns the errors of the second exec, of the query and of the commit.
func continueAfterError(ctx context.Context, db *sql.DB) (exec, query, commit error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err, err, err
	}
	_, _ = tx.ExecContext(ctx, "UPDATE items SET n = n + 1 WHERE id = $1", 1) // the error ignored: the bug
	_, exec = tx.ExecContext(ctx, "UPDATE items SET n = n + 1 WHERE id = $1", 1)
	var n int
	query = tx.QueryRowContext(ctx, "SELECT n FROM items WHERE id = $1", 1).Scan(&n)
	return exec, query, tx.Commit()
}

// checkAbortedTx checks what continueAfterError met: 25P02 at the statements
// after the injected error, pgx's ErrTxCommitRollback at the commit.
func checkAbortedTx(t *testing.T, inj *faults.Injector, exec, query, commit error) {
	t.Helper()
	for _, got := range []struct {
		what string
		err  error
	}{{"second exec", exec}, {"query", query}} {
		var pe *pgconn.PgError
		if !errors.As(got.err, &pe) || pe.Code != faults.CodeInFailedTransaction {
			t.Errorf("%s: %v; want the aborted transaction's 25P02\n%s", got.what, got.err, inj.Trace())
		}
	}
	if !errors.Is(commit, pgx.ErrTxCommitRollback) {
		t.Errorf("commit: %v; want %v\n%s", commit, pgx.ErrTxCommitRollback, inj.Trace())
	}
}

// TestInjectorAbortsTransactionOnSqlmock checks an injected error inside a
// transaction aborts it as Postgres does: a caller that ignores the error
// and goes on gets 25P02, and its commit fails with pgx's
// ErrTxCommitRollback; nothing after the error reaches the driver.
func TestInjectorAbortsTransactionOnSqlmock(t *testing.T) {
	for _, plan := range []string{"match=exec#1:error", "match=exec#1:pgerr=40001", "match=exec#1:pgerr=23505"} {
		t.Run(plan, func(t *testing.T) {
			inj := faults.NewInjector()
			db, mock := openMockInjected(t, inj)
			mock.ExpectBegin()
			inj.Arm(faults.MustParsePlan(plan))
			exec, query, commit := continueAfterError(t.Context(), db)
			checkAbortedTx(t, inj, exec, query, commit)
			checkFired(t, inj, 3)
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Errorf("sqlmock: %v", err)
			}
			waitIdle(t, db)
		})
	}
}

// TestInjectorAbortedTransactionRollsBack checks a caller that rolls back
// after the injected error (as correct code does) reaches the driver's
// rollback, and the conn's next transaction is not aborted.
func TestInjectorAbortedTransactionRollsBack(t *testing.T) {
	inj := faults.NewInjector()
	db, mock := openMockInjected(t, inj)
	mock.ExpectBegin()
	mock.ExpectRollback()
	expectTxOp(mock, 4, false)
	inj.Arm(faults.MustParsePlan("match=exec#1:pgerr=40001"))
	if err := txOp(t.Context(), db); err == nil {
		t.Fatalf("txOp succeeded; want the injected 40001\n%s", inj.Trace())
	}
	if err := txOp(t.Context(), db); err != nil {
		t.Errorf("the unit after the rollback: %v; want a fresh transaction\n%s", err, inj.Trace())
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Errorf("sqlmock: %v", err)
	}
	waitIdle(t, db)
}
