package handlers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestOperationSuccess runs every operation's success path.
func TestOperationSuccess(t *testing.T) {
	for _, op := range operations() {
		t.Run(op.name, func(t *testing.T) {
			f := newMock(t)
			expectAll(f.mock, op.steps)
			if err := op.run(context.Background(), f.svc); err != nil {
				t.Fatalf("%s: got error %v; want success", op.name, err)
			}
			if err := f.invariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOperationFailsAtEveryStep fails each database call of each operation
// in turn: the error must surface with the zero result (never a row the
// failed unit read or never stored), and the transaction be rolled back (or
// none begun), with every connection back in the pool.
func TestOperationFailsAtEveryStep(t *testing.T) {
	for _, op := range operations() {
		for i, st := range op.steps {
			t.Run(fmt.Sprintf("%s/step-%d-%s", op.name, i, st.name), func(t *testing.T) {
				f := newMock(t)
				expectFailAt(f.mock, op.steps, i, errInjected)
				got, err := op.call(context.Background(), f.svc)
				if !errors.Is(err, errInjected) {
					t.Errorf("got error %v; want the injected failure to surface", err)
				}
				if got != nil && !reflect.ValueOf(got).IsZero() {
					t.Errorf("got result %+v with the error; want the zero value", got)
				}
				if err := f.invariants(); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestRetryOnSerializationFailure: 40001 and 40P01 retry the whole unit.
func TestRetryOnSerializationFailure(t *testing.T) {
	op := operation(t, "UpdateThread")
	tests := []struct {
		name       string
		code       string
		failAt     int
		maxRetries int
		wantErr    bool
	}{
		{name: "serialization-at-statement", code: "40001", failAt: 1, maxRetries: 3},
		{name: "deadlock-at-statement", code: "40P01", failAt: 1, maxRetries: 3},
		{name: "serialization-at-commit", code: "40001", failAt: 2, maxRetries: 3},
		{name: "retries-disabled", code: "40001", failAt: 1, maxRetries: 0, wantErr: true},
		{name: "unique-violation-not-retried", code: "23505", failAt: 1, maxRetries: 3, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newMock(t, WithMaxRetries(tt.maxRetries))
			expectFailAt(f.mock, op.steps, tt.failAt, pgErr(tt.code))
			if !tt.wantErr {
				expectAll(f.mock, op.steps)
			}
			err := op.run(context.Background(), f.svc)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v; want error: %v", err, tt.wantErr)
			}
			if err := f.invariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRetryBounded: a unit failing every time is tried 1+maxRetries times.
func TestRetryBounded(t *testing.T) {
	op := operation(t, "DeleteThread")
	f := newMock(t, WithMaxRetries(2))
	for range 3 {
		expectFailAt(f.mock, op.steps, 1, pgErr("40001"))
	}
	err := op.run(context.Background(), f.svc)
	if !isSerialization(err) {
		t.Fatalf("got error %v; want the serialization failure after 3 attempts", err)
	}
	if err := f.invariants(); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackFailureJoined: a failed rollback is reported with, never
// instead of, the first error.
func TestRollbackFailureJoined(t *testing.T) {
	op := operation(t, "CreateThread")
	f := newMock(t)
	errRollback := errors.New("rollback broke")
	op.steps[0].expect(f.mock, nil)
	op.steps[1].expect(f.mock, errInjected)
	f.mock.ExpectRollback().WillReturnError(errRollback)
	err := op.run(context.Background(), f.svc)
	if !errors.Is(err, errInjected) || !errors.Is(err, errRollback) {
		t.Fatalf("got error %v; want both the statement's and the rollback's error", err)
	}
	if err := f.invariants(); err != nil {
		t.Fatal(err)
	}
}

// panicCase runs a unit of work that panics after one statement and
// returns what the harness must see: the panic re-raised, the transaction
// rolled back, the connection back.
func panicCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newMock(tb)
	f.mock.ExpectBegin()
	f.mock.ExpectExec(sqlArchiveThread).WillReturnResult(sqlmockResult(1))
	f.mock.ExpectRollback()
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_ = f.svc.inTx(ctx, "panicking unit", readWrite, func(ctx context.Context, q DBTX) error {
			if _, err := q.ExecContext(ctx, sqlArchiveThread, threadID, alice); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	var errs []error
	if recovered != "boom" {
		errs = append(errs, fmt.Errorf("panic: got %v; want the unit's panic %q re-raised", recovered, "boom"))
	}
	errs = append(errs, f.invariants())
	return errors.Join(errs...)
}

// TestPanicRollsBackAndRepanics: a panic inside the unit rolls back, then
// propagates.
func TestPanicRollsBackAndRepanics(t *testing.T) {
	if err := panicCase(context.Background(), t); err != nil {
		t.Fatal(err)
	}
}

// cancelCase cancels the request context inside the unit, after its
// statement succeeded: the unit must roll back and report the cancellation.
func cancelCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newMock(tb)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mock.ExpectBegin()
	f.mock.ExpectExec(sqlArchiveThread).WillReturnResult(sqlmockResult(1))
	f.mock.ExpectRollback()
	err := f.svc.inTx(ctx, "cancelled unit", readWrite, func(ctx context.Context, q DBTX) error {
		if _, err := q.ExecContext(ctx, sqlArchiveThread, threadID, alice); err != nil {
			return err
		}
		cancel() // the client went away
		return nil
	})
	var errs []error
	if !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("got error %v; want context.Canceled", err))
	}
	errs = append(errs, f.invariants())
	return errors.Join(errs...)
}

// TestCancelledContextRollsBack covers a cancellation inside the unit and
// one that hits a running statement.
func TestCancelledContextRollsBack(t *testing.T) {
	t.Run("between-statements", func(t *testing.T) {
		if err := cancelCase(context.Background(), t); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("during-statement", func(t *testing.T) {
		f := newMock(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		f.mock.ExpectBegin()
		f.mock.ExpectQuery(sqlGetThread).WillDelayFor(time.Minute).WillReturnRows(threadRows())
		f.mock.ExpectRollback()
		_, err := f.svc.GetThread(ctx, alice, threadID)
		if err == nil {
			t.Fatal("got success; want the cancellation to surface")
		}
		if err := f.invariants(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("before-begin", func(t *testing.T) {
		f := newMock(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.svc.ListThreads(ctx, alice, Page{Limit: 1})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got error %v; want context.Canceled", err)
		}
		if err := f.invariants(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnitReadOnlyAndNames: read operations and errors name the operation.
func TestErrorNamesOperation(t *testing.T) {
	for _, op := range operations() {
		t.Run(op.name, func(t *testing.T) {
			f := newMock(t)
			expectFailAt(f.mock, op.steps, 0, errInjected)
			err := op.run(context.Background(), f.svc)
			want := map[string]string{
				"ListThreads": OpListThreads, "CreateThread": OpCreateThread, "GetThread": OpGetThread,
				"UpdateThread": OpUpdateThread, "DeleteThread": OpDeleteThread, "AutoRename": OpAutoRename,
				"GetMessages": OpGetMessages, "SendMessage": OpSendMessage,
			}[op.name]
			if err == nil || len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
				t.Fatalf("got error %q; want it to start with the operation name %q", err, want)
			}
			_ = f.invariants()
		})
	}
}
