package leakcheck_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// slowTitle stands in for the title generator: a slow call outside the
// database (a deliberate latency, not a wait for a condition).
func slowTitle(context.Context) error {
	time.Sleep(30 * time.Millisecond)
	return nil
}

// renameHoldingTx is the planted bug: the transaction stays open while the
// title generator runs.
func renameHoldingTx(t testing.TB, tr *leakcheck.Tracker, db *sql.DB, mock sqlmock.Sqlmock) int {
	t.Helper()
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE threads SET title = 'x'").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	at := line(1)
	tx, err := db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if err := tr.External(ctx(t), "title generator", slowTitle); err != nil {
		t.Fatalf("external: %v", err)
	}
	if _, err := tx.ExecContext(ctx(t), "UPDATE threads SET title = 'x'"); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return at
}

// renameWithoutTx is the correct shape: read, generate with no transaction
// open, write.
func renameWithoutTx(t testing.TB, tr *leakcheck.Tracker, db *sql.DB, mock sqlmock.Sqlmock) int {
	t.Helper()
	mock.ExpectBegin()
	mock.ExpectCommit()
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE threads SET title = 'x'").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	tx, err := db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := tr.External(ctx(t), "title generator", slowTitle); err != nil {
		t.Fatalf("external: %v", err)
	}
	tx, err = db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.ExecContext(ctx(t), "UPDATE threads SET title = 'x'"); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return 0
}

func TestLongTransactions(t *testing.T) {
	tests := []struct {
		name      string
		plant     func(testing.TB, *leakcheck.Tracker, *sql.DB, sqlmock.Sqlmock) int
		threshold time.Duration
		want      []string
	}{
		{"clean", renameWithoutTx, 0, nil},
		{"clean-under-threshold", renameWithoutTx, time.Minute, nil},
		{"held-across-external-call", renameHoldingTx, 0, []string{
			`a transaction was held across the external call "title generator"`,
			"transaction begun by leakcheck_test.renameHoldingTx at leakcheck/longtx_test.go:",
			"external call made by leakcheck_test.renameHoldingTx at leakcheck/longtx_test.go:",
		}},
		{"over-threshold", renameHoldingTx, 10 * time.Millisecond, []string{
			"threshold 10ms) before its commit",
			"begun by leakcheck_test.renameHoldingTx at leakcheck/longtx_test.go:",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := leakcheck.NewTracker()
			db, mock := newMock(t, tr)
			at := tt.plant(t, tr, db, mock)
			var opts []leakcheck.Option
			if tt.threshold > 0 {
				opts = append(opts, leakcheck.WithLongTransaction(tt.threshold))
			}
			err := leakcheck.FindLongTransactions(ctx(t), tr, opts...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("FindLongTransactions on clean code: %v", err)
				}
				return
			}
			if !errors.Is(err, leakcheck.ErrLeak) || !leakcheck.Has(err, leakcheck.CheckLongTx) {
				t.Fatalf("FindLongTransactions = %v; want a long-transaction finding", err)
			}
			mustContain(t, err, tt.want...)
			mustContain(t, err, fmt.Sprintf("renameHoldingTx at leakcheck/longtx_test.go:%d", at))
			if tt.name == "held-across-external-call" {
				t.Logf("the report:\n%v", err)
			}
			tr.Reset()
			if err := leakcheck.FindLongTransactions(ctx(t), tr); err != nil {
				t.Errorf("after Reset: %v", err)
			}
		})
	}
}
