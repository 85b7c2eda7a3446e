package handlers

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// The eleven failing tests of the original remediation plan, on sqlmock.
// Each case is a function returning every invariant it found broken, so
// that the planted-bug tests can run the same check against a broken
// unit of work and require it to fail. The same eleven are re-checked on a
// real server in originals_pg_test.go.

func requireClean(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErrIs records a violation unless err wraps target.
func wantErrIs(errs *[]error, err, target error) {
	if !errors.Is(err, target) {
		*errs = append(*errs, fmt.Errorf("error: got %v; want it to wrap %v", err, target))
	}
}

// runFailingAt runs the operation name on a fresh sqlmock service whose
// step i fails with injected, and returns the fixture and the operation's
// error.
func runFailingAt(ctx context.Context, tb testing.TB, name string, i int, injected error, opts ...Option) (*mockFixture, error) {
	tb.Helper()
	f := newMock(tb, opts...)
	op := operation(tb, name)
	expectFailAt(f.mock, op.steps, i, injected)
	return f, op.run(ctx, f.svc)
}

// failsCleanly runs the operation name with its step i failing with
// injected and returns every violation: the operation's error not wrapping
// injected, and the fixture's invariants.
func failsCleanly(ctx context.Context, tb testing.TB, name string, i int, injected error) error {
	tb.Helper()
	f, err := runFailingAt(ctx, tb, name, i, injected)
	var errs []error
	wantErrIs(&errs, err, injected)
	return errors.Join(append(errs, f.invariants())...)
}

// original01: update thread, the commit fails with "connection lost".
func original01(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	return failsCleanly(ctx, tb, "UpdateThread", 2, errors.New("connection lost"))
}

func TestOriginal01_UpdateCommitConnectionLost(t *testing.T) {
	requireClean(t, original01(context.Background(), t))
}

// original02: create thread, the insert violates a constraint.
func original02(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	violation := pgErr("23505")
	f, err := runFailingAt(ctx, tb, "CreateThread", 1, violation)
	var errs []error
	wantErrIs(&errs, err, violation)
	wantErrIs(&errs, err, ErrConflict)
	return errors.Join(append(errs, f.invariants())...)
}

func TestOriginal02_CreateConstraintViolationRollsBack(t *testing.T) {
	requireClean(t, original02(context.Background(), t))
}

// original03: get thread, the lookup times out (statement timeout).
func original03(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	timeout := pgErr("57014")
	f, err := runFailingAt(ctx, tb, "GetThread", 1, timeout)
	var errs []error
	wantErrIs(&errs, err, timeout)
	if !IsRetryable(err) {
		errs = append(errs, fmt.Errorf("IsRetryable(%v) = false; want true for a statement timeout", err))
	}
	return errors.Join(append(errs, f.invariants())...)
}

func TestOriginal03_GetTimeoutCleansUpSession(t *testing.T) {
	requireClean(t, original03(context.Background(), t))
}

// original04: the message count runs in the thread read's transaction: with
// a pool of one connection, a second connection would wait forever.
func original04(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newMock(tb)
	f.db.SetMaxOpenConns(1)
	op := operation(tb, "GetThread")
	expectAll(f.mock, op.steps)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var errs []error
	if err := op.run(ctx, f.svc); err != nil {
		errs = append(errs, fmt.Errorf("get thread on a pool of one connection: got %v; want success (a second connection was taken while the transaction held the only one)", err))
	}
	return errors.Join(append(errs, f.invariants())...)
}

func TestOriginal04_CountInSameTransaction(t *testing.T) {
	requireClean(t, original04(context.Background(), t))
}

// original05: delete thread, archiving fails.
func original05(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	return failsCleanly(ctx, tb, "DeleteThread", 1, errInjected)
}

func TestOriginal05_DeleteArchiveFailsRollsBack(t *testing.T) {
	requireClean(t, original05(context.Background(), t))
}

// countingGenerator is a TitleGenerator that counts its calls and records
// the pool's connections in use while it runs.
type countingGenerator struct {
	mu       sync.Mutex
	calls    int
	inUse    []int
	stats    func() int
	response string
}

func (g *countingGenerator) GenerateTitle(ctx context.Context, first string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.stats != nil {
		g.inUse = append(g.inUse, g.stats())
	}
	if g.response != "" {
		return g.response, nil
	}
	return FirstWordsTitle{}.GenerateTitle(ctx, first)
}

// original06: auto-rename, the title update fails after the title was
// generated.
func original06(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	gen := &countingGenerator{}
	f, err := runFailingAt(ctx, tb, "AutoRename", 5, errInjected, WithTitleGenerator(gen))
	var errs []error
	wantErrIs(&errs, err, errInjected)
	if gen.calls != 1 {
		errs = append(errs, fmt.Errorf("title generator: got %d calls; want 1", gen.calls))
	}
	return errors.Join(append(errs, f.invariants())...)
}

func TestOriginal06_AutoRenameUpdateFailsRollsBack(t *testing.T) {
	requireClean(t, original06(context.Background(), t))
}

// original07: list threads, the query times out.
func original07(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	return failsCleanly(ctx, tb, "ListThreads", 1, pgErr("57014"))
}

func TestOriginal07_ListTimeoutRollsBack(t *testing.T) {
	requireClean(t, original07(context.Background(), t))
}

// original08: the commit fails and leaves the session unusable
// (driver.ErrBadConn): database/sql must discard it, never pool it again.
func original08(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newMock(tb)
	op := operation(tb, "UpdateThread")
	expectFailAt(f.mock, op.steps, 2, driver.ErrBadConn)
	f.mock.ExpectClose() // the broken session is closed, not returned to the pool
	var errs []error
	wantErrIs(&errs, op.run(ctx, f.svc), driver.ErrBadConn)
	errs = append(errs, f.invariants())
	if n := f.db.Stats().OpenConnections; n != 0 {
		errs = append(errs, fmt.Errorf("pool: got %d open connection(s) after a broken commit; want 0 (the broken session was kept)", n))
	}
	return errors.Join(errs...)
}

func TestOriginal08_CommitFailureSessionDiscarded(t *testing.T) {
	requireClean(t, original08(context.Background(), t))
}

// original09: two concurrent updates, one fails at commit, the other
// succeeds; neither disturbs the other.
func original09(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newMock(tb)
	mock := f.mock
	mock.MatchExpectationsInOrder(false)
	lost := errors.New("connection lost")
	title := "t"
	for range 2 {
		mock.ExpectBegin()
		mock.ExpectQuery(sqlUpdateThread).WillReturnRows(threadRows())
	}
	mock.ExpectCommit()
	mock.ExpectCommit().WillReturnError(lost)
	results := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := f.svc.UpdateThread(ctx, alice, threadID, UpdateThreadInput{Title: &title})
			results <- err
		}()
	}
	var failed, ok int
	for range 2 {
		switch err := <-results; {
		case err == nil:
			ok++
		case errors.Is(err, lost):
			failed++
		default:
			return fmt.Errorf("concurrent update: unexpected error %v", err)
		}
	}
	var errs []error
	if ok != 1 || failed != 1 {
		errs = append(errs, fmt.Errorf("concurrent updates: got %d succeeded, %d failed; want 1 and 1", ok, failed))
	}
	return errors.Join(append(errs, f.invariants())...)
}

func TestOriginal09_ConcurrentUpdatesOneCommitFails(t *testing.T) {
	requireClean(t, original09(context.Background(), t))
}

// original10: after a failing get, the connection is back in the pool.
func original10(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f, err := runFailingAt(ctx, tb, "GetThread", 2, errInjected)
	var errs []error
	wantErrIs(&errs, err, errInjected)
	errs = append(errs, f.invariants())
	if s := f.db.Stats(); s.Idle != s.OpenConnections {
		errs = append(errs, fmt.Errorf("pool: got %d idle of %d open; want every connection idle", s.Idle, s.OpenConnections))
	}
	return errors.Join(errs...)
}

func TestOriginal10_GetFailureReturnsConnection(t *testing.T) {
	requireClean(t, original10(context.Background(), t))
}

// original11: after a failing list, no transaction is left open.
func original11(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	return failsCleanly(ctx, tb, "ListThreads", 1, errInjected)
}

func TestOriginal11_ListLeavesNoOpenTransaction(t *testing.T) {
	requireClean(t, original11(context.Background(), t))
}
