package handlers

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// Fixture values shared by the sqlmock tests.
const (
	alice    = "alice"
	threadID = "0b3c9a52-6f3e-4d8a-9a43-2f1d1b6c7e01"
	msgID    = "6e0f3f0c-1b7a-4f63-9d1e-5c8f3a2b9d10"
)

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// errInjected is the plain failure the step tables inject.
var errInjected = errors.New("injected failure")

func pgErr(code string) error {
	return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "injected " + code}
}

// mockFixture is a Service on a sqlmock database.
type mockFixture struct {
	tb   testing.TB // whose deadline bounds the checks' polling
	db   *sql.DB
	mock sqlmock.Sqlmock
	svc  *Service
}

func newMock(tb testing.TB, opts ...Option) *mockFixture {
	tb.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		tb.Fatalf("sqlmock.New: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return &mockFixture{tb: tb, db: db, mock: mock, svc: New(db, opts...)}
}

// invariants returns every session-safety violation left after a case: an
// unmet or unexpected sqlmock expectation, or a connection still in use
// once the deadline has passed.
func (f *mockFixture) invariants() error {
	var errs []error
	// The pool first: a rollback database/sql makes on a cancelled context
	// runs asynchronously and has happened once the connection is back.
	if err := leakcheck.FindPool(context.Background(), f.db, leakcheck.WithTimeout(time.Until(testkit.Deadline(f.tb)))); err != nil {
		errs = append(errs, err)
	}
	if err := f.mock.ExpectationsWereMet(); err != nil {
		errs = append(errs, fmt.Errorf("sqlmock expectations: %w", err))
	}
	return errors.Join(errs...)
}

// Row builders for the canned results.
var (
	threadCols  = []string{"id", "user_id", "title", "metadata", "message_count", "created_at", "updated_at"}
	messageCols = []string{"id", "thread_id", "role", "content", "client_message_id", "metadata", "seq", "created_at"}
)

func threadRows() *sqlmock.Rows {
	return sqlmock.NewRows(threadCols).AddRow(threadID, alice, "hello", []byte(`{"user_id":"alice","k":"v"}`), int64(2), fixedTime, fixedTime)
}

func messageRows() *sqlmock.Rows {
	return sqlmock.NewRows(messageCols).
		AddRow(msgID, threadID, "user", "hi there", "c-1", []byte(`{}`), int64(1), fixedTime)
}

func oneColumn(name string, v driver.Value) func() *sqlmock.Rows {
	return func() *sqlmock.Rows { return sqlmock.NewRows([]string{name}).AddRow(v) }
}

func noRows(cols ...string) func() *sqlmock.Rows {
	return func() *sqlmock.Rows { return sqlmock.NewRows(cols) }
}

// stepKind is what a database call of an operation is.
type stepKind int

const (
	stepBegin stepKind = iota
	stepQuery
	stepExec
	stepCommit
)

// step is one database call an operation makes, with its canned answer.
type step struct {
	name   string
	kind   stepKind
	sql    string
	rows   func() *sqlmock.Rows // stepQuery
	result driver.Result        // stepExec
}

func begin(name string) step  { return step{name: name, kind: stepBegin} }
func commit(name string) step { return step{name: name, kind: stepCommit} }
func query(name, sql string, rows func() *sqlmock.Rows) step {
	return step{name: name, kind: stepQuery, sql: sql, rows: rows}
}
func exec(name, sql string, res driver.Result) step {
	return step{name: name, kind: stepExec, sql: sql, result: res}
}

// expect sets the expectation for one step, failing it with failErr if set.
func (s step) expect(m sqlmock.Sqlmock, failErr error) {
	switch s.kind {
	case stepBegin:
		e := m.ExpectBegin()
		if failErr != nil {
			e.WillReturnError(failErr)
		}
	case stepCommit:
		e := m.ExpectCommit()
		if failErr != nil {
			e.WillReturnError(failErr)
		}
	case stepQuery:
		e := m.ExpectQuery(s.sql)
		if failErr != nil {
			e.WillReturnError(failErr)
		} else {
			e.WillReturnRows(s.rows())
		}
	case stepExec:
		e := m.ExpectExec(s.sql)
		if failErr != nil {
			e.WillReturnError(failErr)
		} else {
			e.WillReturnResult(s.result)
		}
	}
}

// expectAll sets the expectations of a successful run.
func expectAll(m sqlmock.Sqlmock, steps []step) {
	for _, s := range steps {
		s.expect(m, nil)
	}
}

// expectFailAt sets the expectations of a run whose step i fails with
// failErr: the steps before succeed, and a failed statement is followed by a
// rollback (a failed begin or commit leaves nothing to roll back).
func expectFailAt(m sqlmock.Sqlmock, steps []step, i int, failErr error) {
	for _, s := range steps[:i] {
		s.expect(m, nil)
	}
	steps[i].expect(m, failErr)
	if k := steps[i].kind; k == stepQuery || k == stepExec {
		m.ExpectRollback()
	}
}

// opCase is one operation, the database calls of its success path, and a
// call of it returning its result (nil for DeleteThread) and error.
type opCase struct {
	name  string
	steps []step
	call  func(ctx context.Context, s *Service) (any, error)
}

// run calls the operation and keeps its error.
func (o opCase) run(ctx context.Context, s *Service) error {
	_, err := o.call(ctx, s)
	return err
}

func sendInput() SendMessageInput {
	return SendMessageInput{Content: "hi there", ClientMessageID: "c-1"}
}

// result boxes an operation's result with its error.
func result[T any](v T, err error) (any, error) { return v, err }

// oneTx is an operation that runs stmts in one transaction.
func oneTx(name string, call func(ctx context.Context, s *Service) (any, error), stmts ...step) opCase {
	steps := append([]step{begin("begin")}, stmts...)
	return opCase{name: name, steps: append(steps, commit("commit")), call: call}
}

// operations lists the eight operations with their database calls, in order.
func operations() []opCase {
	title := "renamed"
	return []opCase{
		oneTx("ListThreads", func(ctx context.Context, s *Service) (any, error) {
			return result(s.ListThreads(ctx, alice, Page{Limit: 10}))
		}, query("select-threads", sqlListThreads, threadRows)),
		oneTx("CreateThread", func(ctx context.Context, s *Service) (any, error) {
			return result(s.CreateThread(ctx, alice, CreateThreadInput{Title: "hello", Metadata: map[string]any{"k": "v"}}))
		}, query("insert-thread", sqlInsertThread, threadRows)),
		oneTx("GetThread", func(ctx context.Context, s *Service) (any, error) {
			return result(s.GetThread(ctx, alice, threadID))
		},
			query("select-thread", sqlGetThread, threadRows),
			query("count-messages", sqlCountMessages, oneColumn("count", int64(2))),
		),
		oneTx("UpdateThread", func(ctx context.Context, s *Service) (any, error) {
			return result(s.UpdateThread(ctx, alice, threadID, UpdateThreadInput{Title: &title, Metadata: map[string]any{"k": "v"}}))
		}, query("merge-metadata", sqlUpdateThread, threadRows)),
		oneTx("DeleteThread", func(ctx context.Context, s *Service) (any, error) {
			return nil, s.DeleteThread(ctx, alice, threadID)
		}, exec("archive-thread", sqlArchiveThread, sqlmock.NewResult(0, 1))),
		{
			name: "AutoRename",
			steps: []step{
				begin("begin-read"),
				query("check-thread", sqlThreadExists, oneColumn("one", int64(1))),
				query("first-user-message", sqlFirstUserMessage, oneColumn("content", "plan the trip to Lisbon")),
				commit("commit-read"),
				begin("begin-write"),
				query("rename-thread", sqlRenameThread, threadRows),
				commit("commit-write"),
			},
			call: func(ctx context.Context, s *Service) (any, error) {
				return result(s.AutoRename(ctx, alice, threadID))
			},
		},
		oneTx("GetMessages", func(ctx context.Context, s *Service) (any, error) {
			return result(s.GetMessages(ctx, alice, threadID, Page{Limit: 10}))
		},
			query("check-thread", sqlThreadExists, oneColumn("one", int64(1))),
			query("select-messages", sqlListMessages, messageRows),
		),
		oneTx("SendMessage", func(ctx context.Context, s *Service) (any, error) {
			return result(s.SendMessage(ctx, alice, threadID, sendInput()))
		},
			query("lock-thread", sqlLockThread, oneColumn("message_count", int64(0))),
			query("find-client-id", sqlMessageByClientID, noRows(messageCols...)),
			query("next-seq", sqlNextSeq, oneColumn("message_count", int64(1))),
			query("insert-message", sqlInsertMessage, messageRows),
		),
	}
}

func operation(tb testing.TB, name string) opCase {
	tb.Helper()
	for _, op := range operations() {
		if op.name == name {
			return op
		}
	}
	tb.Fatalf("no operation %q", name)
	return opCase{}
}

func sqlmockResult(rows int64) driver.Result { return sqlmock.NewResult(0, rows) }

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
