package handlers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"go.uber.org/goleak"
)

// A check runs one case of the suite on the correct code and returns every invariant it
// found broken: nil, or the test that runs it fails.
type check func(ctx context.Context, tb testing.TB) error

// namedCheck is a check with the name of the subtest it runs as.
type namedCheck struct {
	name string
	c    check
}

// forEachCheck runs each check as a subtest and hands its result to verdict.
func forEachCheck(t *testing.T, tests []namedCheck, verdict func(t *testing.T, err error)) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verdict(t, tt.c(context.Background(), t))
		})
	}
}

// requireChecksPass runs each check as a subtest on the correct code and
// requires it to find nothing broken.
func requireChecksPass(t *testing.T, tests []namedCheck) {
	t.Helper()
	forEachCheck(t, tests, requireClean)
}

// TestChecks: a rows error surfaces, no connection is held across the title generator, the
// notifier runs within the request, an update is one UPDATE merging in SQL, and a send looks
// its client id up under the thread's lock.
func TestChecks(t *testing.T) {
	requireChecksPass(t, []namedCheck{
		{"listRowsErrorCase", listRowsErrorCase},
		{"autoRenameHoldsNothingCase", autoRenameHoldsNothingCase},
		{"notifierInRequestCase", notifierInRequestCase},
		{"updateStepsCase", updateStepsCase},
		{"sendStepsCase", sendStepsCase},
	})
}

// listRowsErrorCase: a rows error in the middle of the list must surface.
func listRowsErrorCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newMock(tb)
	f.mock.ExpectBegin()
	f.mock.ExpectQuery(sqlListThreads).WillReturnRows(threadRows().
		AddRow(threadID, alice, "second", []byte(`{}`), int64(0), fixedTime, fixedTime).
		RowError(1, errInjected))
	f.mock.ExpectRollback()
	var errs []error
	_, err := f.svc.ListThreads(ctx, alice, Page{Limit: 10})
	wantErrIs(&errs, err, errInjected)
	return errors.Join(append(errs, f.invariants())...)
}

// autoRenameHoldsNothingCase: no connection is in use while the title
// generator runs.
func autoRenameHoldsNothingCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	gen := &countingGenerator{}
	f := newMock(tb, WithTitleGenerator(gen))
	gen.stats = func() int { return f.db.Stats().InUse }
	expectAll(f.mock, operation(tb, "AutoRename").steps)
	var errs []error
	if _, err := f.svc.AutoRename(ctx, alice, threadID); err != nil {
		errs = append(errs, fmt.Errorf("auto-rename: %w", err))
	}
	for _, n := range gen.inUse {
		if n != 0 {
			errs = append(errs, fmt.Errorf("title generator ran with %d connection(s) in use; want 0 (a transaction was held across the external call)", n))
		}
	}
	return errors.Join(append(errs, f.invariants())...)
}

// blockingNotifier cancels the request (the client went away) and waits for
// its context to end, or for release.
type blockingNotifier struct {
	cancelRequest context.CancelFunc
	release       chan struct{}
}

func (n *blockingNotifier) ThreadRenamed(ctx context.Context, _ Thread) error {
	n.cancelRequest()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-n.release:
		return nil
	}
}

// notifierInRequestCase: the notifier runs within the call, under the
// request's context: nothing it does outlives the request.
func notifierInRequestCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := &blockingNotifier{cancelRequest: cancel, release: make(chan struct{})}
	defer close(n.release)
	f := newMock(tb, WithNotifier(n))
	expectAll(f.mock, operation(tb, "AutoRename").steps)
	baseline := goleak.IgnoreCurrent()
	var errs []error
	if _, err := f.svc.AutoRename(ctx, alice, threadID); err != nil {
		errs = append(errs, fmt.Errorf("auto-rename: %w", err))
	}
	if err := goleak.Find(baseline); err != nil {
		errs = append(errs, fmt.Errorf("goroutines outlive auto-rename: %w", err))
	}
	return errors.Join(append(errs, f.invariants())...)
}

// updateStepsCase: UpdateThread makes exactly its table's calls (one
// UPDATE merging in SQL).
func updateStepsCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	return succeedsCleanly(ctx, tb, "UpdateThread", "update thread", expectAll)
}

// succeedsCleanly runs the operation name on a fresh sqlmock service with
// the expectations expect sets from its steps, and returns every violation:
// the operation's error (prefixed with what), and the fixture's invariants.
func succeedsCleanly(ctx context.Context, tb testing.TB, name, what string, expect func(m sqlmock.Sqlmock, steps []step)) error {
	tb.Helper()
	f := newMock(tb)
	op := operation(tb, name)
	expect(f.mock, op.steps)
	var errs []error
	if err := op.run(ctx, f.svc); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
	}
	return errors.Join(append(errs, f.invariants())...)
}

// sendStepsCase: a send with a client id looks the id up under the thread's
// lock before it inserts, and stores the id.
func sendStepsCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	return succeedsCleanly(ctx, tb, "SendMessage", "send message", func(m sqlmock.Sqlmock, steps []step) {
		for _, s := range steps {
			if s.sql == sqlInsertMessage {
				m.ExpectQuery(sqlInsertMessage).
					WithArgs(threadID, "user", "hi there", "c-1", sqlmock.AnyArg(), int64(1)).
					WillReturnRows(messageRows())
				continue
			}
			s.expect(m, nil)
		}
	})
}

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
