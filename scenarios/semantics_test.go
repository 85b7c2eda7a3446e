package scenarios

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

func TestMayWrite(t *testing.T) {
	tests := []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", false},
		{"  select * from t for update", false},
		{"SHOW search_path", false},
		{"VALUES (1)", false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", false},
		{"WITH x AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM x", true},
		{"INSERT INTO t VALUES (1)", true},
		{"update t set n = 1", true},
		{"DELETE FROM t", true},
		{"SET statement_timeout = 0", true},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			if got := mayWrite(tt.sql); got != tt.want {
				t.Errorf("mayWrite(%q): got %v; want %v", tt.sql, got, tt.want)
			}
		})
	}
}

func TestPlaceOf(t *testing.T) {
	// an autocommit INSERT ... RETURNING, then a transaction
	trace := faults.Trace{
		{Index: 1, Kind: faults.StepReset, Conn: 1},
		{Index: 2, Kind: faults.StepQuery, Conn: 1, SQL: "SELECT n FROM t"},
		{Index: 3, Kind: faults.StepNext, Conn: 1, SQL: "SELECT n FROM t"},
		{Index: 4, Kind: faults.StepRowsClose, Conn: 1, SQL: "SELECT n FROM t"},
		{Index: 5, Kind: faults.StepQuery, Conn: 1, SQL: "INSERT INTO t VALUES (1) RETURNING id"},
		{Index: 6, Kind: faults.StepNext, Conn: 1, SQL: "INSERT INTO t VALUES (1) RETURNING id"},
		{Index: 7, Kind: faults.StepRowsClose, Conn: 1, SQL: "INSERT INTO t VALUES (1) RETURNING id"},
		{Index: 8, Kind: faults.StepBegin, Conn: 1},
		{Index: 9, Kind: faults.StepExec, Conn: 1, SQL: "UPDATE t SET n = 2"},
		{Index: 10, Kind: faults.StepCommit, Conn: 1},
	}
	tests := []struct {
		step int
		want place
	}{
		{2, place{}},
		{3, place{}},
		{5, place{write: true}},
		{6, place{wrote: true}},
		{7, place{wrote: true}},
		{9, place{inTx: true, wrote: true}},
		{10, place{inTx: true, wrote: true}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("step-%d", tt.step), func(t *testing.T) {
			if got := placeOf(trace, tt.step); got != tt.want {
				t.Errorf("placeOf(step %d): got %+v; want %+v", tt.step, got, tt.want)
			}
		})
	}
}

func TestOutcomeRules(t *testing.T) {
	badconn := faults.Fault{Kind: faults.KindBadConn}
	canceled := faults.Fault{Kind: faults.KindPgErr, Code: faults.CodeQueryCanceled}
	shutdown := faults.Fault{Kind: faults.KindPgErr, Code: faults.CodeAdminShutdown}
	cutAfter := faults.Fault{Kind: faults.KindCutAfter}
	errFault := faults.Fault{Kind: faults.KindError}
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"retried/badconn-autocommit-exec", retriedByDatabaseSQL(badconn, faults.StepExec, place{}), true},
		{"retried/badconn-autocommit-query", retriedByDatabaseSQL(badconn, faults.StepQuery, place{}), true},
		{"retried/badconn-in-tx", retriedByDatabaseSQL(badconn, faults.StepExec, place{inTx: true}), false},
		{"retried/badconn-at-next", retriedByDatabaseSQL(badconn, faults.StepNext, place{}), false},
		{"retried/error-autocommit-exec", retriedByDatabaseSQL(errFault, faults.StepExec, place{}), false},
		{"after-may-fail/after-autocommit-write", afterStateMayFail(errFault, place{wrote: true}), true},
		{"after-may-fail/cut-after-at-write", afterStateMayFail(cutAfter, place{write: true}), true},
		{"after-may-fail/error-at-write", afterStateMayFail(errFault, place{write: true}), false},
		{"after-may-fail/in-tx", afterStateMayFail(errFault, place{inTx: true, wrote: true}), false},
		{"possible/57014-at-rows-of-write", faultPossible(canceled, faults.StepNext, place{wrote: true}), false},
		{"possible/57P01-at-rows-of-write", faultPossible(shutdown, faults.StepNext, place{wrote: true}), true},
		{"possible/57014-at-rows-of-read", faultPossible(canceled, faults.StepNext, place{}), true},
		{"healthy/error-at-exec", keepsConnHealthy(errFault, faults.StepExec), true},
		{"healthy/error-at-commit", keepsConnHealthy(errFault, faults.StepCommit), false},
		{"healthy/badconn", keepsConnHealthy(badconn, faults.StepQuery), false},
		{"healthy/57P01", keepsConnHealthy(shutdown, faults.StepQuery), false},
		{"healthy/cancel", keepsConnHealthy(faults.Fault{Kind: faults.KindCancel}, faults.StepQuery), false},
		{"healthy/lock-at-exec", keepsConnHealthy(faults.Fault{Kind: faults.KindLock}, faults.StepExec), true},
		{"healthy/stmt-timeout-at-query", keepsConnHealthy(faults.Fault{Kind: faults.KindStmtTimeout}, faults.StepQuery), true},
		{"healthy/cancel-blocked", keepsConnHealthy(faults.Fault{Kind: faults.KindCancelBlocked}, faults.StepExec), false},
		{"healthy/terminate", keepsConnHealthy(faults.Fault{Kind: faults.KindTerminate}, faults.StepExec), false},
		{"caller-context/exec", carriesCallerContext(faults.StepExec), true},
		{"caller-context/commit", carriesCallerContext(faults.StepCommit), true},
		{"caller-context/connect", carriesCallerContext(faults.StepConnect), false},
		{"caller-context/stmt-close", carriesCallerContext(faults.StepStmtClose), false},
		{"silent/stmt-close", stmtCloseMayBeSilent(faults.StepStmtClose), true},
		{"silent/rows-close", stmtCloseMayBeSilent(faults.StepRowsClose), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v; want %v", tt.got, tt.want)
			}
		})
	}
}

// kvConfig returns a Postgres matrix configuration on a fresh database with
// a key-value table.
func kvConfig(t testing.TB) Config {
	t.Helper()
	db := pgtest.New(t, pgtest.WithMigration("scenarios-kv", func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, `CREATE TABLE kv (k text PRIMARY KEY, v int NOT NULL)`)
		return err
	}))
	return Config{Backend: Postgres, DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName}
}

var kvSeq atomic.Int64

// kvOp is an autocommit operation on one fresh key: run does the work.
func kvOp(name string, run func(ctx context.Context, db *sql.DB, key string) error) Operation {
	return Operation{
		Name: name,
		Setup: func(ctx context.Context, db *sql.DB) (Fixture, error) {
			key := fmt.Sprintf("k%d", kvSeq.Add(1))
			_, err := db.ExecContext(ctx, `INSERT INTO kv VALUES ($1, 0)`, key)
			return key, err
		},
		Run: func(ctx context.Context, db *sql.DB, fx Fixture) error { return run(ctx, db, fx.(string)) },
		State: func(ctx context.Context, db *sql.DB, fx Fixture) (string, error) {
			var s string
			err := db.QueryRowContext(ctx, `SELECT coalesce(string_agg(k || '=' || v, ',' ORDER BY k), '') FROM kv WHERE k LIKE $1 || '%'`, fx).Scan(&s)
			return strings.ReplaceAll(s, fx.(string), "key"), err
		},
	}
}

// The autocommit operations: correct code written the common ways.
var (
	insertReturningOnPool = kvOp("InsertReturningOnPool", func(ctx context.Context, db *sql.DB, key string) error {
		var k string
		return db.QueryRowContext(ctx, `INSERT INTO kv VALUES ($1 || '-new', 1) RETURNING k`, key).Scan(&k)
	})
	updateOnPool = kvOp("UpdateOnPool", func(ctx context.Context, db *sql.DB, key string) error {
		_, err := db.ExecContext(ctx, `UPDATE kv SET v = v + 1 WHERE k = $1`, key)
		return err
	})
	updateOnConn = kvOp("UpdateOnConn", func(ctx context.Context, db *sql.DB, key string) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.ExecContext(ctx, `UPDATE kv SET v = v + 1 WHERE k = $1`, key)
		return err
	})
	// swallowsOnConn is a bug: it drops the exec's error.
	swallowsOnConn = kvOp("SwallowsOnConn", func(ctx context.Context, db *sql.DB, key string) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, _ = conn.ExecContext(ctx, `UPDATE kv SET v = v + 1 WHERE k = $1`, key)
		return nil
	})
)

// TestAutocommitCorrectCodeIsClean: correct autocommit code — through the
// pool (database/sql retries a bad connection) and through a *sql.Conn (it
// does not), a write that commits before its rows are read — passes every
// case on real Postgres: no false alarm.
func TestAutocommitCorrectCodeIsClean(t *testing.T) {
	cfg := kvConfig(t)
	for _, op := range []Operation{insertReturningOnPool, updateOnPool, updateOnConn} {
		t.Run(op.Name, func(t *testing.T) {
			rep, err := Run(t.Context(), cfg, op)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Results) < 10 {
				t.Fatalf("got %d cases; want the whole matrix", len(rep.Results))
			}
			for _, f := range rep.Findings() {
				t.Errorf("false alarm on correct code:\n%s", f.Error())
			}
		})
	}
}

// TestSwallowedBadConnIsCaught: success after a bad connection counts as
// database/sql's retry only when the trace shows the statement run again;
// code that drops the error on a *sql.Conn is caught.
func TestSwallowedBadConnIsCaught(t *testing.T) {
	cfg := kvConfig(t)
	cfg.Only = func(c Case) bool { return c.Fault.Kind == faults.KindBadConn && c.StepKind == faults.StepExec }
	rep, err := Run(t.Context(), cfg, swallowsOnConn)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) == 0 {
		t.Fatal("no badconn case at the exec step")
	}
	for _, res := range rep.Results {
		found := false
		for _, f := range res.Findings {
			found = found || f.Invariant == InvErrorSurfaced
		}
		if !found {
			t.Errorf("%s: got findings %v; want %q (the bad connection's error was dropped, and nothing retried it)",
				res.Case, res.Findings, InvErrorSurfaced)
		}
	}
}

// TestReplayReproducesAlone: every case of a matrix — with faults that kill
// connections among them — gives the same verdict when run alone, as its
// replay command runs it: no case depends on what an earlier one left in the
// pool.
func TestReplayReproducesAlone(t *testing.T) {
	cfg := kvConfig(t)
	for _, op := range []Operation{updateOnConn, swallowsOnConn} {
		t.Run(op.Name, func(t *testing.T) {
			rep, err := Run(t.Context(), cfg, op)
			if err != nil {
				t.Fatal(err)
			}
			whole := rep.Verdicts()
			for _, res := range rep.Results {
				alone := cfg
				name := res.Case.Name()
				alone.Only = func(c Case) bool { return c.Name() == name }
				one, err := Run(t.Context(), alone, op)
				if err != nil {
					t.Fatal(err)
				}
				got := one.Verdicts()
				if len(got) != 1 || got[name] != whole[name] {
					t.Errorf("%s: alone got %q (%d cases); in the whole matrix %q", name, got[name], len(got), whole[name])
				}
			}
		})
	}
}

// TestNoStepRecordedIsAnError: an operation that never touches the pool it
// is given (it opened its own) cannot pass by testing nothing.
func TestNoStepRecordedIsAnError(t *testing.T) {
	cfg := kvConfig(t)
	own := cfg.DB
	op := kvOp("OwnPool", func(ctx context.Context, _ *sql.DB, key string) error {
		_, err := own.ExecContext(ctx, `UPDATE kv SET v = v + 1 WHERE k = $1`, key)
		return err
	})
	for _, backend := range []faults.Backend{Postgres} {
		t.Run(backend.String(), func(t *testing.T) {
			_, err := NewRunner(t.Context(), cfg, op)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "recorded no step") {
				t.Fatalf("got %v; want an ErrConfig saying the clean run recorded no step", err)
			}
		})
	}
}

// TestUnavailableSaysWhy: a Connector (the user's own driver setup) keeps
// every fault family it can, and the ones it cannot apply are said, with
// the fix, in Unavailable and in the Report — never dropped silently.
func TestUnavailableSaysWhy(t *testing.T) {
	base := kvConfig(t)
	pc, err := pgx.ParseConfig(base.DSN)
	if err != nil {
		t.Fatal(err)
	}
	wire := faults.NewWire()
	wired := *pc.Copy()
	wire.Install(&wired.Config)
	tests := []struct {
		name string
		cfg  func() Config
		want []string // a word of each line, in order
	}{
		{"dsn", func() Config { return base }, nil},
		{"connector", func() Config {
			c := base
			c.DSN, c.Connector = "", stdlib.GetConnector(*pc)
			return c
		}, []string{"wire faults", "lock, stmt-timeout and cancel-blocked"}},
		{"connector-with-wire", func() Config {
			c := base
			c.DSN, c.Connector, c.Wire = "", stdlib.GetConnector(wired), wire
			return c
		}, []string{"lock, stmt-timeout and cancel-blocked"}},
		{"connector-without-admin", func() Config {
			c := base
			c.DSN, c.Connector, c.Wire, c.Admin, c.AppName = "", stdlib.GetConnector(wired), wire, nil, ""
			return c
		}, []string{"server faults"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg()
			cfg.Only = func(c Case) bool { return c.Clean() }
			rep, err := Run(t.Context(), cfg, updateOnPool)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Unavailable) != len(tt.want) {
				t.Fatalf("Unavailable: got %q; want %d line(s) naming %q", rep.Unavailable, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(rep.Unavailable[i], w) {
					t.Errorf("Unavailable[%d] = %q; want it to name %q", i, rep.Unavailable[i], w)
				}
			}
		})
	}
}
