package drvwrap_test

//lint:file-ignore SA1019 the tests check that the deprecated driver interfaces the wrapper preserves are still there.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// transcript runs a fixed sequence of database/sql calls and records what
// the caller observes: values, errors, column types.
type transcript struct {
	lines []string
}

func (tr *transcript) add(format string, args ...any) {
	tr.lines = append(tr.lines, fmt.Sprintf(format, args...))
}

func (tr *transcript) rows(label string, rs *sql.Rows, err error) {
	if err != nil {
		tr.add("%s: error %v", label, err)
		return
	}
	defer rs.Close()
	cts, err := rs.ColumnTypes()
	if err != nil {
		tr.add("%s: column types error %v", label, err)
	}
	for _, ct := range cts {
		l, okl := ct.Length()
		n, okn := ct.Nullable()
		p, s, okp := ct.DecimalSize()
		tr.add("%s: column %s db=%q scan=%v len=%d,%v null=%v,%v dec=%d,%d,%v", label, ct.Name(), ct.DatabaseTypeName(), ct.ScanType(), l, okl, n, okn, p, s, okp)
	}
	for set := 0; ; set++ {
		for rs.Next() {
			cols, _ := rs.Columns()
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				tr.add("%s: scan error %v", label, err)
				continue
			}
			tr.add("%s: set %d row %v", label, set, vals)
		}
		if !rs.NextResultSet() {
			break
		}
	}
	tr.add("%s: rows err %v close %v", label, rs.Err(), rs.Close())
}

// script is a sequence of calls that mirrors what the handlers do.
func script(ctx context.Context, db *sql.DB) []string {
	var tr transcript
	tr.add("ping %v", db.PingContext(ctx))

	res, err := db.ExecContext(ctx, "UPDATE t SET a = $1 WHERE id = $2", "x", 1)
	if err != nil {
		tr.add("exec error %v", err)
	} else {
		n, err := res.RowsAffected()
		tr.add("exec affected %d %v", n, err)
	}
	_, err = db.ExecContext(ctx, "INSERT INTO t (a) VALUES ($1)", "dup")
	tr.add("exec insert error %v", err)

	rs, err := db.QueryContext(ctx, "SELECT id, a FROM t WHERE id > $1 ORDER BY id", 0)
	tr.rows("query", rs, err)

	var n int
	err = db.QueryRowContext(ctx, "SELECT id FROM t WHERE id = $1", 99).Scan(&n)
	tr.add("query row none: %v", err)

	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		tr.add("begin ro error %v", err)
	} else {
		err = tx.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n)
		tr.add("tx count %d %v", n, err)
		tr.add("commit %v", tx.Commit())
		tr.add("commit again %v", tx.Commit())
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		tr.add("begin error %v", err)
	} else {
		_, err = tx.ExecContext(ctx, "DELETE FROM t WHERE id = $1", 2)
		tr.add("tx exec %v", err)
		tr.add("rollback %v", tx.Rollback())
	}

	st, err := db.PrepareContext(ctx, "SELECT a FROM t WHERE id = $1")
	if err != nil {
		tr.add("prepare error %v", err)
	} else {
		var a string
		err = st.QueryRowContext(ctx, 1).Scan(&a)
		tr.add("stmt query %q %v", a, err)
		tr.add("stmt close %v", st.Close())
	}

	_, err = db.ExecContext(ctx, "UPDATE t SET a = $1", struct{}{})
	tr.add("bad arg %v", err)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = db.ExecContext(cctx, "UPDATE t SET a = 'c'")
	tr.add("cancelled exec %v", err)
	_, err = db.BeginTx(cctx, nil)
	tr.add("cancelled begin %v", err)

	st2 := db.Stats()
	tr.add("in use %d open %d", st2.InUse, st2.OpenConnections)
	return tr.lines
}

func expectScript(mock sqlmock.Sqlmock) {
	mock.ExpectExec("UPDATE t SET a").WithArgs("x", 1).WillReturnResult(sqlmock.NewResult(0, 3))
	mock.ExpectExec("INSERT INTO t").WillReturnError(errors.New("duplicate key"))
	cols := []*sqlmock.Column{
		sqlmock.NewColumn("id").OfType("INT8", int64(0)).Nullable(false),
		sqlmock.NewColumn("a").OfType("VARCHAR", "").WithLength(20).Nullable(true),
	}
	rows1 := sqlmock.NewRowsWithColumnDefinition(cols...).AddRow(int64(1), "one").AddRow(int64(2), nil)
	rows2 := sqlmock.NewRowsWithColumnDefinition(sqlmock.NewColumn("x").OfType("TEXT", "")).AddRow("second set")
	mock.ExpectQuery("SELECT id, a FROM t").WithArgs(0).WillReturnRows(rows1, rows2)
	mock.ExpectQuery("SELECT id FROM t").WithArgs(99).WillReturnRows(sqlmock.NewRows([]string{"id"}))
	mock.ExpectBegin()
	mock.ExpectQuery("SELECT count").WillReturnRows(sqlmock.NewRows([]string{"count"}).AddRow(int64(2)))
	mock.ExpectCommit()
	mock.ExpectBegin()
	mock.ExpectExec("DELETE FROM t").WithArgs(2).WillReturnError(errors.New("boom"))
	mock.ExpectRollback()
	mock.ExpectPrepare("SELECT a FROM t").ExpectQuery().WithArgs(1).WillReturnRows(sqlmock.NewRows([]string{"a"}).AddRow("one").RowError(0, errors.New("row broke")))
}

// openMock returns a sqlmock database and its mock; wrap selects a pool
// opened through drvwrap with the given hooks.
func openMock(t testing.TB, wrap bool, h drvwrap.Hooks) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	dsn := fmt.Sprintf("drvwrap_%s_%d", t.Name(), time.Now().UnixNano())
	raw, mock, err := sqlmock.NewWithDSN(dsn)
	if err != nil {
		t.Fatalf("sqlmock: %v", err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	if !wrap {
		return raw, mock
	}
	c, err := drvwrap.WrapDriver(raw.Driver(), h).(driver.DriverContext).OpenConnector(dsn)
	if err != nil {
		t.Fatalf("open connector: %v", err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { _ = db.Close() })
	return db, mock
}

func diffLines(want, got []string) string {
	var b strings.Builder
	n := max(len(want), len(got))
	for i := range n {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d:\n-%s\n+%s\n", i, w, g)
		}
	}
	return b.String()
}

// identityHooks are the hook sets under which a wrapped driver must behave
// exactly as the raw one: none, and hooks that pass every call through.
var identityHooks = []struct {
	name  string
	hooks drvwrap.Hooks
}{
	{"no-hooks", drvwrap.Hooks{}},
	{"pass-through-hooks", drvwrap.Hooks{
		Before: func(context.Context, *drvwrap.Call) error { return nil },
		After:  func(_ context.Context, _ *drvwrap.Call, err error) error { return err },
	}},
}

func TestIdenticalOnSqlmock(t *testing.T) {
	for _, tt := range identityHooks {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			rawDB, rawMock := openMock(t, false, drvwrap.Hooks{})
			expectScript(rawMock)
			want := script(ctx, rawDB)

			db, mock := openMock(t, true, tt.hooks)
			expectScript(mock)
			got := script(ctx, db)
			if d := diffLines(want, got); d != "" {
				t.Errorf("transcript through the wrapper differs (-want +got):\n%s", d)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Errorf("wrapped: %v", err)
			}
			if err := rawMock.ExpectationsWereMet(); err != nil {
				t.Errorf("raw: %v", err)
			}
		})
	}
}

// fakeDriver lets the tests choose which optional interfaces a conn has.
type fakeDriver struct {
	resetter, validator, converter bool
}

type fakeConn struct{ d *fakeDriver }
type fakeConnR struct{ *fakeConn }
type fakeConnV struct{ *fakeConn }
type fakeConnRV struct{ *fakeConn }
type fakeStmt struct{}
type fakeStmtCC struct{ fakeStmt }
type fakeTx struct{}
type fakeRows struct{ n int }

func (d *fakeDriver) Open(string) (driver.Conn, error) {
	c := &fakeConn{d: d}
	switch {
	case d.resetter && d.validator:
		return fakeConnRV{c}, nil
	case d.resetter:
		return fakeConnR{c}, nil
	case d.validator:
		return fakeConnV{c}, nil
	}
	return c, nil
}
func (c *fakeConn) Prepare(string) (driver.Stmt, error) {
	if c.d.converter {
		return fakeStmtCC{}, nil
	}
	return fakeStmt{}, nil
}
func (c *fakeConn) Close() error                            { return nil }
func (c *fakeConn) Begin() (driver.Tx, error)               { return fakeTx{}, nil }
func (c fakeConnR) ResetSession(context.Context) error      { return nil }
func (c fakeConnRV) ResetSession(context.Context) error     { return nil }
func (c fakeConnV) IsValid() bool                           { return true }
func (c fakeConnRV) IsValid() bool                          { return true }
func (fakeStmt) Close() error                               { return nil }
func (fakeStmt) NumInput() int                              { return -1 }
func (fakeStmt) Exec([]driver.Value) (driver.Result, error) { return driver.RowsAffected(1), nil }
func (fakeStmt) Query([]driver.Value) (driver.Rows, error)  { return &fakeRows{}, nil }
func (fakeStmtCC) ColumnConverter(int) driver.ValueConverter {
	return driver.DefaultParameterConverter
}
func (fakeTx) Commit() error        { return nil }
func (fakeTx) Rollback() error      { return nil }
func (*fakeRows) Columns() []string { return []string{"n"} }
func (*fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.n > 0 {
		return errors.New("fake: no more rows") // not io.EOF: ends the rows with an error
	}
	r.n++
	dest[0] = int64(7)
	return nil
}

func TestPreservesOptionalInterfaces(t *testing.T) {
	tests := []struct {
		name string
		d    fakeDriver
	}{
		{"plain", fakeDriver{}},
		{"resetter", fakeDriver{resetter: true}},
		{"validator", fakeDriver{validator: true}},
		{"resetter-validator", fakeDriver{resetter: true, validator: true}},
		{"column-converter", fakeDriver{converter: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, err := tt.d.Open("")
			if err != nil {
				t.Fatal(err)
			}
			wrapped, err := drvwrap.WrapDriver(&tt.d, drvwrap.Hooks{}).Open("")
			if err != nil {
				t.Fatal(err)
			}
			_, r1 := inner.(driver.SessionResetter)
			_, r2 := wrapped.(driver.SessionResetter)
			_, v1 := inner.(driver.Validator)
			_, v2 := wrapped.(driver.Validator)
			if r1 != r2 || v1 != v2 {
				t.Errorf("SessionResetter %v, Validator %v through the wrapper; want %v, %v", r2, v2, r1, v1)
			}
			si, _ := inner.Prepare("q")
			sw, _ := wrapped.Prepare("q")
			_, c1 := si.(driver.ColumnConverter) //nolint:staticcheck // checking it is preserved
			_, c2 := sw.(driver.ColumnConverter) //nolint:staticcheck // checking it is preserved
			if c1 != c2 {
				t.Errorf("ColumnConverter %v through the wrapper; want %v", c2, c1)
			}
			if u, ok := wrapped.(interface{ Unwrap() driver.Conn }); !ok || !reflect.DeepEqual(u.Unwrap(), inner) {
				t.Errorf("Unwrap() does not return the driver's conn")
			}
		})
	}
}

// TestLegacyDriverThroughDatabaseSQL drives a driver with none of the
// context interfaces through database/sql with and without the wrapper.
func TestLegacyDriverThroughDatabaseSQL(t *testing.T) {
	tests := []struct {
		name string
		d    fakeDriver
	}{
		{"plain", fakeDriver{}},
		{"resetter-validator", fakeDriver{resetter: true, validator: true}},
		{"column-converter", fakeDriver{converter: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			legacy := func(db *sql.DB) []string {
				var tr transcript
				res, err := db.ExecContext(ctx, "UPDATE", 1)
				if err == nil {
					n, _ := res.RowsAffected()
					tr.add("exec %d", n)
				} else {
					tr.add("exec %v", err)
				}
				_, err = db.ExecContext(ctx, "UPDATE", sql.Named("a", 1))
				tr.add("named %v", err)
				rs, err := db.QueryContext(ctx, "SELECT")
				tr.rows("query", rs, err)
				_, err = db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				tr.add("begin ro %v", err)
				_, err = db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
				tr.add("begin serializable %v", err)
				tx, err := db.BeginTx(ctx, nil)
				tr.add("begin %v", err)
				if err == nil {
					tr.add("commit %v", tx.Commit())
				}
				tr.add("in use %d", db.Stats().InUse)
				return tr.lines
			}
			raw := sql.OpenDB(dsnConnector{&tt.d})
			defer raw.Close()
			c, err := drvwrap.WrapDriver(&tt.d, drvwrap.Hooks{}).(driver.DriverContext).OpenConnector("")
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			if d := diffLines(legacy(raw), legacy(db)); d != "" {
				t.Errorf("transcript through the wrapper differs (-want +got):\n%s", d)
			}
		})
	}
}

type dsnConnector struct{ d driver.Driver }

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open("") }
func (c dsnConnector) Driver() driver.Driver                        { return c.d }

// recorder collects the calls the hooks see.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) hooks(fail drvwrap.Op, failErr error) drvwrap.Hooks {
	return drvwrap.Hooks{
		Before: func(_ context.Context, c *drvwrap.Call) error {
			if c.Op == fail {
				return failErr
			}
			return nil
		},
		After: func(_ context.Context, c *drvwrap.Call, err error) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			s := fmt.Sprintf("%s conn=%d", c.Op, c.ConnID)
			if c.SQL != "" {
				s += " sql=" + c.SQL
			}
			if len(c.Args) > 0 {
				s += fmt.Sprintf(" args=%d", len(c.Args))
			}
			if c.Op == drvwrap.OpBegin && c.TxOptions.ReadOnly {
				s += " read-only"
			}
			if c.Op == drvwrap.OpExec || c.Op == drvwrap.OpStmtExec {
				s += fmt.Sprintf(" affected=%d", c.RowsAffected)
			}
			if c.Row != nil {
				s += fmt.Sprintf(" cols=%v row=%v", c.Columns, c.Row)
			}
			if err != nil {
				s += " err=" + err.Error()
			}
			r.calls = append(r.calls, s)
			return err
		},
	}
}

func TestHooksSeeEveryCall(t *testing.T) {
	var rec recorder
	db, mock := openMock(t, true, rec.hooks(0, nil))
	ctx := context.Background()
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE t").WithArgs(1).WillReturnResult(sqlmock.NewResult(0, 2))
	mock.ExpectQuery("SELECT a").WillReturnRows(sqlmock.NewRows([]string{"a"}).AddRow("x"))
	mock.ExpectCommit()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: false})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE t", 1); err != nil {
		t.Fatal(err)
	}
	var a string
	if err := tx.QueryRowContext(ctx, "SELECT a").Scan(&a); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"connect conn=1", // sqlmock's database/sql pool had no conn of ours: the first call connects
		"begin conn=1",
		"exec conn=1 sql=UPDATE t args=1 affected=2",
		"query conn=1 sql=SELECT a",
		"next conn=1 sql=SELECT a cols=[a] row=[x]",
		"rows-close conn=1 sql=SELECT a",
		"commit conn=1",
	}
	rec.mu.Lock()
	got := rec.calls
	rec.mu.Unlock()
	if d := diffLines(want, got); d != "" {
		t.Errorf("calls seen by the hooks (-want +got):\n%s", d)
	}
}

func TestBeforeErrorReachesCaller(t *testing.T) {
	injected := errors.New("injected")
	tests := []struct {
		name   string
		op     drvwrap.Op
		expect func(sqlmock.Sqlmock)
		run    func(context.Context, *sql.DB) error
	}{
		{"begin", drvwrap.OpBegin, func(sqlmock.Sqlmock) {}, func(ctx context.Context, db *sql.DB) error {
			_, err := db.BeginTx(ctx, nil)
			return err
		}},
		{"exec", drvwrap.OpExec, func(sqlmock.Sqlmock) {}, func(ctx context.Context, db *sql.DB) error {
			_, err := db.ExecContext(ctx, "UPDATE t")
			return err
		}},
		{"query", drvwrap.OpQuery, func(sqlmock.Sqlmock) {}, func(ctx context.Context, db *sql.DB) error {
			_, err := db.QueryContext(ctx, "SELECT 1")
			return err
		}},
		{"next", drvwrap.OpRowsNext, func(m sqlmock.Sqlmock) {
			m.ExpectQuery("SELECT 1").WillReturnRows(sqlmock.NewRows([]string{"a"}).AddRow(1))
		}, func(ctx context.Context, db *sql.DB) error {
			var n int
			return db.QueryRowContext(ctx, "SELECT 1").Scan(&n)
		}},
		{"commit", drvwrap.OpCommit, func(m sqlmock.Sqlmock) { m.ExpectBegin() }, func(ctx context.Context, db *sql.DB) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			return tx.Commit()
		}},
		{"rollback", drvwrap.OpRollback, func(m sqlmock.Sqlmock) { m.ExpectBegin() }, func(ctx context.Context, db *sql.DB) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			return tx.Rollback()
		}},
		{"prepare", drvwrap.OpPrepare, func(sqlmock.Sqlmock) {}, func(ctx context.Context, db *sql.DB) error {
			_, err := db.PrepareContext(ctx, "SELECT 1")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			db, mock := openMock(t, true, rec.hooks(tt.op, injected))
			tt.expect(mock)
			err := tt.run(context.Background(), db)
			if !errors.Is(err, injected) {
				t.Errorf("got error %v; want the injected error", err)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Errorf("the driver was called despite the injected error: %v", err)
			}
			if n := db.Stats().InUse; n != 0 {
				t.Errorf("%d connection(s) in use after the injected error; want 0", n)
			}
		})
	}
}
