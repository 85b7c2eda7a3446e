package scenarios

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/DATA-DOG/go-sqlmock"
)

// What a fault does to the rest of a run, as far as the sqlmock expectations
// are concerned.
type outcome int

const (
	// outSurfaces: the failure reaches the caller; an open transaction is
	// rolled back and nothing after it runs.
	outSurfaces outcome = iota
	// outAbsorbed: database/sql absorbs it (a bad connection replaced before
	// anything was sent, an ignored close error): the run goes on as clean.
	outAbsorbed
	// outRetried: the failure ends the unit (rolled back), then the operation
	// runs the unit again from its begin, and everything after it.
	outRetried
	// outEither: the failure may surface or be retried by database/sql (a
	// connection the driver reports dead before anything was sent); the
	// state must agree with what the caller was told. Postgres only.
	outEither
)

func (o outcome) String() string {
	switch o {
	case outAbsorbed:
		return "absorbed by database/sql"
	case outRetried:
		return "retried by the operation"
	case outEither:
		return "surfaces or is retried on a fresh connection"
	default:
		return "surfaces to the caller"
	}
}

// expectFor returns the expectation-bearing golden steps a case must see on
// sqlmock: e is the clean run's (gstep.expects) steps; k is how many of them
// the run passed before the faulted step, of kind kind; after says the fault
// lets the driver run the step first.
//
// The model is the one every correct unit of work follows: the prefix, the
// fault, then the rollback of the open transaction (none after a failed
// commit: database/sql has ended it), and the whole unit again from its begin
// when the unit is retried. rollback false: the fault killed the connection,
// so the rollback never reaches the driver.
func expectFor(e []gstep, k int, kind string, after bool, out outcome, rollback bool) []gstep {
	if out == outAbsorbed {
		return e
	}
	reached := k
	if after && k < len(e) && e[k].Kind == kind {
		reached = k + 1
	}
	exp := append([]gstep(nil), e[:reached]...)
	// The unit the fault hit: the last begin before k without its end.
	begin, open := -1, false
	for i := 0; i < k; i++ {
		switch e[i].Kind {
		case "begin":
			begin, open = i, true
		case "commit", "rollback":
			open = false
		}
	}
	switch kind {
	case "begin":
		begin, open = k, false
	case "commit", "rollback":
		open = false
	}
	if open && rollback {
		exp = append(exp, gstep{Kind: "rollback"})
	}
	if out == outRetried && begin >= 0 {
		exp = append(exp, e[begin:]...)
	}
	return exp
}

// expectsOnly returns the steps a sqlmock expectation stands for.
func expectsOnly(steps []gstep) []gstep {
	var out []gstep
	for i, s := range steps {
		if !s.expects() {
			continue
		}
		if s.Kind == "prepare" {
			for _, later := range steps[i+1:] {
				s.Closed = s.Closed || (later.Kind == "stmt-close" && later.SQL == s.SQL)
			}
		}
		out = append(out, s)
	}
	return out
}

// setExpectations sets one sqlmock expectation per step, in order.
func setExpectations(mock sqlmock.Sqlmock, steps []gstep) {
	for _, s := range steps {
		switch s.Kind {
		case "begin":
			mock.ExpectBegin()
		case "commit":
			mock.ExpectCommit()
		case "rollback":
			mock.ExpectRollback()
		case "prepare":
			e := mock.ExpectPrepare(s.SQL)
			if s.Closed {
				e.WillBeClosed() // a statement the code never closes stays prepared on its session
			}
		case "exec":
			e := mock.ExpectExec(s.SQL)
			if s.Args > 0 {
				e.WithArgs(anyArgs(s.Args)...)
			}
			e.WillReturnResult(sqlmock.NewResult(0, max(s.RowsAffected, 0)))
		case "query":
			e := mock.ExpectQuery(s.SQL)
			if s.Args > 0 {
				e.WithArgs(anyArgs(s.Args)...)
			}
			rows := mock.NewRows(s.Columns)
			for _, r := range s.Rows {
				rows.AddRow(r...)
			}
			e.WillReturnRows(rows)
		}
	}
}

func anyArgs(n int) []driver.Value {
	a := make([]driver.Value, n)
	for i := range a {
		a[i] = sqlmock.AnyArg()
	}
	return a
}

// describeExpectations writes the expectations of a case one a line, for
// failure messages.
func describeExpectations(steps []gstep) string {
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "%d %s", i, s.Kind)
		if s.SQL != "" {
			fmt.Fprintf(&b, ": %s", oneLine(s.SQL, 120))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

var mockSeq atomic.Int64

// mockDB is one sqlmock whose driver conns can be wrapped: keeper holds one
// open conn so that database/sql discarding a bad conn does not make sqlmock
// forget its DSN.
type mockDB struct {
	keeper *sql.DB
	mock   sqlmock.Sqlmock
	conn   driver.Connector
}

// newMockDB returns a fresh sqlmock with exact (whitespace-collapsed) query
// matching, in-order expectations, and a connector on its driver.
func newMockDB(name string) (*mockDB, error) {
	dsn := fmt.Sprintf("scenarios-%s-%d", name, mockSeq.Add(1))
	db, mock, err := sqlmock.NewWithDSN(dsn, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		return nil, fmt.Errorf("scenarios: open sqlmock: %w", err)
	}
	db.SetMaxIdleConns(1)
	return &mockDB{keeper: db, mock: mock, conn: dsnConnector{dsn: dsn, drv: db.Driver()}}, nil
}

func (m *mockDB) Close() error { return m.keeper.Close() }

// dsnConnector opens conns of a driver by name, as sql.Open would.
type dsnConnector struct {
	dsn string
	drv driver.Driver
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }
