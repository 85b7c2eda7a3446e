package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// migrateInjItems creates the table txOp works on, with one row at n = 0.
func migrateInjItems(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL); INSERT INTO items VALUES (1, 0);`)
	return err
}

// injectedPG is a real database with a pool under test opened through an
// Injector that has a Wire and a Server.
type injectedPG struct {
	pdb *pgtest.Database
	db  *sql.DB // the pool under test, application_name app
	app string
	inj *faults.Injector
}

func newInjectedPG(tb testing.TB) *injectedPG {
	tb.Helper()
	pdb := pgtest.New(tb, pgtest.WithMigration("faults-injector-items-v1", migrateInjItems))
	cfg, err := pgx.ParseConfig(pdb.DSN)
	if err != nil {
		tb.Fatalf("parse DSN: %v", err)
	}
	app := pdb.AppName + "_sut"
	cfg.RuntimeParams["application_name"] = app
	wire := faults.NewWire()
	wire.Install(&cfg.Config)
	server := faults.NewServer(pdb.Admin, faults.WithLockDB(pdb.DB))
	inj := faults.NewInjector(faults.WithWire(wire), faults.WithServer(server, app))
	db := sql.OpenDB(inj.WrapConnector(stdlib.GetConnector(*cfg)))
	tb.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	return &injectedPG{pdb: pdb, db: db, app: app, inj: inj}
}

// n reads items.n for id 1 from another session.
func (e *injectedPG) n(tb testing.TB) int {
	tb.Helper()
	var n int
	if err := e.pdb.DB.QueryRowContext(tb.Context(), `SELECT n FROM items WHERE id = 1`).Scan(&n); err != nil {
		tb.Fatalf("read items: %v", err)
	}
	return n
}

// waitN polls items.n until it is want (a statement the client lost the
// answer to may still be running on the server), failing at the deadline.
func (e *injectedPG) waitN(tb testing.TB, want int) {
	tb.Helper()
	testkit.EventuallyNil(tb, func() error {
		if n := e.n(tb); n != want {
			return fmt.Errorf("items.n = %d; want %d (all or nothing)", n, want)
		}
		return nil
	}, "items.n to settle")
}

// waitGone polls until no session of the pool under test is left on the
// server (after a cut or a terminate the backend ends once it has done what
// it received), failing at the deadline.
func (e *injectedPG) waitGone(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithDeadline(tb.Context(), testkit.Deadline(tb))
	defer cancel()
	if err := faults.NewServer(e.pdb.Admin).WaitGone(ctx, e.app); err != nil {
		tb.Fatal(err)
	}
}

// waitNoOpenTx polls pg_stat_activity until no session of the pool under
// test sits in a transaction, failing at the deadline.
func (e *injectedPG) waitNoOpenTx(tb testing.TB) {
	tb.Helper()
	testkit.EventuallyNil(tb, func() error {
		var n int
		var states string
		err := e.pdb.Admin.QueryRowContext(tb.Context(),
			`SELECT count(*), coalesce(string_agg(state, ','), '') FROM pg_stat_activity
			 WHERE application_name = $1 AND state <> 'idle'`, e.app).Scan(&n, &states)
		if err != nil {
			tb.Fatalf("read pg_stat_activity: %v", err)
		}
		if n != 0 {
			return fmt.Errorf("session(s) of the pool under test still %s; want none in a transaction", states)
		}
		return nil
	}, "the pool under test's sessions to leave their transactions")
}

func TestInjectorFaultsOnPostgres(t *testing.T) {
	tests := []struct {
		name   string
		plan   string
		atStep int
		wantN  int  // items.n afterwards: 1 when the unit committed
		gone   bool // the fault ends the session: wait until the server has seen it go
		ctx    func(*faults.Injector) (context.Context, context.CancelFunc)
		check  func(*testing.T, error)
	}{
		{name: "error/exec", plan: "match=exec#1:error", atStep: 3, check: wantIs("exec:", faults.ErrInjected)},
		{name: "pgerr-40001/exec", plan: "match=exec#1:pgerr=40001", atStep: 3, check: wantPg("exec:", "40001", "ERROR")},
		{name: "pgerr-23505/query", plan: "match=query#1:pgerr=23505", atStep: 4, check: wantPg("query:", "23505", "ERROR")},
		{name: "pgerr-57P01/commit", plan: "match=commit#1:pgerr=57P01", atStep: 7, check: wantPg("commit:", "57P01", "FATAL")},
		{name: "pgerr-08006/next", plan: "match=next#1:pgerr=08006", atStep: 5, check: wantPg("query:", "08006", "FATAL")},
		{name: "badconn/exec", plan: "match=exec#1:badconn", atStep: 3, check: wantIs("exec:", driverErrBadConn)},
		{name: "badconn/begin-retried", plan: "match=begin#1:badconn", atStep: 2, wantN: 1, check: wantNil},
		{name: "cancel/exec", plan: "match=exec#1:cancel", atStep: 3, check: wantIs("exec:", context.Canceled),
			ctx: func(inj *faults.Injector) (context.Context, context.CancelFunc) {
				return inj.Context(context.Background())
			}},
		{name: "latency/commit", plan: "match=commit#1:latency=5ms", atStep: 7, wantN: 1, check: wantNil},
		// An injected error at a commit ends the session, as pgx closes a
		// conn whose COMMIT failed: nothing is left idle in transaction.
		{name: "error/commit", plan: "match=commit#1:error", atStep: 7, gone: true, check: wantIs("commit:", faults.ErrInjected)},
		{name: "pgerr-40001/commit", plan: "match=commit#1:pgerr=40001", atStep: 7, gone: true, check: wantPg("commit:", "40001", "ERROR")},
		{name: "latency-deadline/commit", plan: "match=commit#1:latency=1h", atStep: 7, gone: true, check: wantIs("commit:", context.DeadlineExceeded),
			ctx: func(*faults.Injector) (context.Context, context.CancelFunc) {
				// The deadline also bounds the connect before the commit: long enough for a
				// loaded machine to open one (the latency it ends is an hour).
				return context.WithTimeout(context.Background(), 5*time.Second)
			}},
		{name: "cut/exec", plan: "match=exec#1:cut", atStep: 3, gone: true, check: wantAnyErr("exec:")},
		{name: "cut/commit", plan: "match=commit#1:cut", atStep: 7, gone: true, check: wantAnyErr("commit:")},
		{name: "ambiguous/commit", plan: "match=commit#1:ambiguous", atStep: 7, wantN: 1, gone: true, check: wantAnyErr("commit:")},
		{name: "terminate/exec", plan: "match=exec#1:terminate", atStep: 3, gone: true, check: wantAnyErr("exec:")},
		{name: "lock/exec", plan: "match=exec#1:lock", atStep: 3, check: wantPg("exec:", "55P03", "ERROR")},
		{name: "stmt-timeout/exec", plan: "match=exec#1:stmt-timeout", atStep: 3, check: wantPg("exec:", "57014", "ERROR")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newInjectedPG(t)
			e.inj.Arm(faults.MustParsePlan(tt.plan))
			ctx, cancel := context.WithCancel(t.Context())
			if tt.ctx != nil {
				ctx, cancel = tt.ctx(e.inj)
			}
			defer cancel()
			err := txOp(ctx, e.db)
			t.Logf("txOp: %v\n%s", err, e.inj.Trace())
			tt.check(t, err)
			checkFired(t, e.inj, tt.atStep)
			waitIdle(t, e.db)
			if tt.gone {
				e.waitGone(t)
			}
			e.waitNoOpenTx(t)
			e.waitN(t, tt.wantN)
			// The pool recovers: the same unit succeeds once the fault has fired.
			if err := txOp(t.Context(), e.db); err != nil {
				t.Errorf("the unit after the fault: %v; want the pool to recover", err)
			}
		})
	}
}

// TestInjectorRollbackFaultEndsSession checks an injected error at a
// rollback ends the session (as pgx closes a conn whose ROLLBACK failed):
// the server transaction does not outlive it and the pool recovers.
func TestInjectorRollbackFaultEndsSession(t *testing.T) {
	for _, plan := range []string{"match=rollback#1:error", "match=rollback#1:pgerr=57014"} {
		t.Run(plan, func(t *testing.T) {
			e := newInjectedPG(t)
			e.inj.Arm(faults.MustParsePlan(plan))
			tx, err := e.db.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			if _, err := tx.ExecContext(t.Context(), "UPDATE items SET n = n + 1 WHERE id = $1", 1); err != nil {
				t.Fatalf("exec: %v", err)
			}
			if err := tx.Rollback(); err == nil {
				t.Fatalf("rollback succeeded; want the injected error\n%s", e.inj.Trace())
			}
			checkFired(t, e.inj, 4)
			waitIdle(t, e.db)
			e.waitGone(t)
			e.waitN(t, 0)
			if err := txOp(t.Context(), e.db); err != nil {
				t.Errorf("the unit after the fault: %v; want the pool to recover", err)
			}
			e.waitN(t, 1)
		})
	}
}

// TestInjectorCutAfterOutsideTx checks cut-after at an autocommit exec:
// the statement's whole request reaches the server, the client sees an
// error, the session ends — and the statement committed, every time: the
// Wire closes the connection only once the server's reply started arriving.
func TestInjectorCutAfterOutsideTx(t *testing.T) {
	e := newInjectedPG(t)
	e.inj.Arm(faults.MustParsePlan("match=exec#1:cut-after"))
	_, err := e.db.ExecContext(t.Context(), "UPDATE items SET n = n + 1 WHERE id = $1", 1)
	if err == nil {
		t.Fatalf("exec succeeded; want the cut connection's error\n%s", e.inj.Trace())
	}
	checkFired(t, e.inj, 2)
	waitIdle(t, e.db)
	e.waitGone(t)
	if n := e.n(t); n != 1 {
		t.Errorf("items.n = %d; want 1 (the statement whose answer was lost is committed)", n)
	}
}

// TestInjectorPanicOnPostgres checks a panic at the steps Applicable offers
// it leaves no transaction open when the unit rolls back while panicking.
func TestInjectorPanicOnPostgres(t *testing.T) {
	tests := []struct {
		name string
		plan string
		step int
	}{
		{"exec", "match=exec#1:panic", 3},
		{"next", "match=next#1:panic", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newInjectedPG(t)
			e.inj.Arm(faults.MustParsePlan(tt.plan))
			var p any
			func() {
				defer func() { p = recover() }()
				_ = txOp(t.Context(), e.db)
			}()
			if _, ok := p.(*faults.InjectedPanic); !ok {
				t.Fatalf("recovered %#v; want *faults.InjectedPanic", p)
			}
			checkFired(t, e.inj, tt.step)
			waitIdle(t, e.db)
			e.waitNoOpenTx(t)
			if n := e.n(t); n != 0 {
				t.Errorf("items.n = %d; want 0 (rolled back)", n)
			}
		})
	}
}

func wantNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("got %v; want success", err)
	}
}

func wantAnyErr(prefix string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		wantPrefix(t, err, prefix)
		if err != nil && errors.Is(err, faults.ErrNeedsMechanism) {
			t.Errorf("the fault was not carried out: %v", err)
		}
	}
}

// TestInjectorAbortsTransactionOnPostgres checks on real Postgres what
// TestInjectorAbortsTransactionOnSqlmock checks on sqlmock: after an
// injected error inside a transaction, a caller that goes on gets 25P02 and
// a commit that fails with pgx's ErrTxCommitRollback; the real transaction
// is rolled back (nothing it wrote is committed), the server holds nothing
// open, and the conn serves the next unit.
func TestInjectorAbortsTransactionOnPostgres(t *testing.T) {
	for _, plan := range []string{"match=exec#1:error", "match=exec#1:pgerr=40001"} {
		t.Run(plan, func(t *testing.T) {
			e := newInjectedPG(t)
			e.inj.Arm(faults.MustParsePlan(plan))
			exec, query, commit := continueAfterError(t.Context(), e.db)
			checkAbortedTx(t, e.inj, exec, query, commit)
			checkFired(t, e.inj, 3)
			waitIdle(t, e.db)
			e.waitNoOpenTx(t)
			e.waitN(t, 0)
			if err := txOp(t.Context(), e.db); err != nil {
				t.Errorf("the unit after the aborted one: %v; want the pool to recover", err)
			}
			e.waitN(t, 1)
		})
	}
}
