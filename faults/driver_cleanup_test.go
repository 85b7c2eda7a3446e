package faults_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
)

// watchingDriver is a driver that, like lib/pq, starts a helper goroutine per
// transaction that waits for the transaction's end (its Commit or Rollback)
// or for the context to end. A fault the injector answers without ever
// reaching the driver's Commit or Rollback leaves that goroutine behind,
// which a real failure does not.
type watchingDriver struct {
	mu      sync.Mutex
	open    int // transactions begun and not yet ended by the driver
	commits int
	rolls   int
}

func (d *watchingDriver) Connect(context.Context) (driver.Conn, error) {
	return &watchingConn{d: d}, nil
}
func (d *watchingDriver) Driver() driver.Driver            { return d }
func (d *watchingDriver) Open(string) (driver.Conn, error) { return &watchingConn{d: d}, nil }

func (d *watchingDriver) counts() (open, commits, rolls int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.open, d.commits, d.rolls
}

type watchingConn struct {
	d      *watchingDriver
	closed bool
}

func (c *watchingConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("watching driver: prepare not supported")
}
func (c *watchingConn) Close() error { c.closed = true; return nil }
func (c *watchingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *watchingConn) BeginTx(ctx context.Context, _ driver.TxOptions) (driver.Tx, error) {
	if c.closed {
		return nil, driver.ErrBadConn
	}
	tx := &watchingTx{c: c, done: make(chan struct{})}
	c.d.mu.Lock()
	c.d.open++
	c.d.mu.Unlock()
	go func() { // the helper goroutine, as lib/pq's watchCancel
		select {
		case <-ctx.Done():
		case <-tx.done:
		}
	}()
	return tx, nil
}

func (c *watchingConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	if c.closed {
		return nil, driver.ErrBadConn
	}
	return driver.RowsAffected(1), nil
}

func (c *watchingConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	if c.closed {
		return nil, driver.ErrBadConn
	}
	return &oneRow{}, nil
}

type oneRow struct{ done bool }

func (r *oneRow) Columns() []string { return []string{"n"} }
func (r *oneRow) Close() error      { return nil }
func (r *oneRow) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(42)
	return nil
}

type watchingTx struct {
	c    *watchingConn
	done chan struct{}
	once sync.Once
}

// end ends the transaction in the driver (its cleanup runs whether or not
// the conn is still alive), as lib/pq's deferred closeTxn does.
func (t *watchingTx) end(commit bool) error {
	t.once.Do(func() {
		close(t.done)
		t.c.d.mu.Lock()
		t.c.d.open--
		if commit {
			t.c.d.commits++
		} else {
			t.c.d.rolls++
		}
		t.c.d.mu.Unlock()
	})
	if t.c.closed {
		return driver.ErrBadConn
	}
	return nil
}

func (t *watchingTx) Commit() error   { return t.end(true) }
func (t *watchingTx) Rollback() error { return t.end(false) }

// TestInjectedFaultsStillEndTheDriversTransaction: whatever the fault — one
// that kills the conn before, at or after the commit, or an error that
// aborts the transaction so that its commit becomes a rollback — the wrapped
// driver's own Commit or Rollback still runs, so its per-transaction cleanup
// happens as it does after a real failure.
func TestInjectedFaultsStillEndTheDriversTransaction(t *testing.T) {
	tests := []struct {
		name string
		plan string
		// continueAfterError commits even after a failed statement (the
		// code under test ignores the error), so that the commit meets an
		// aborted transaction.
		continueAfterError bool
		wantCommits        int
	}{
		{name: "badconn-at-exec", plan: "match=exec:badconn"},
		{name: "fatal-pgerr-at-query", plan: "match=query:pgerr=57P01"},
		{name: "error-at-commit", plan: "match=commit:error", wantCommits: 1},
		{name: "badconn-at-commit", plan: "match=commit:badconn", wantCommits: 1},
		{name: "error-at-rollback", plan: "match=exec:error,match=rollback:error"},
		{name: "commit-of-aborted-tx", plan: "match=exec:error", continueAfterError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &watchingDriver{}
			inj := faults.NewInjector()
			db := sql.OpenDB(inj.WrapConnector(d))
			t.Cleanup(func() { _ = db.Close() })
			plan, err := faults.ParsePlan(tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			// The context stays live through the checks: the driver's helper
			// goroutine must end with the transaction, not with the context.
			ctx := t.Context()
			if err := db.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			inj.Arm(plan)
			if tt.continueAfterError {
				_, _, err = continueAfterError(ctx, db)
			} else {
				err = txOp(ctx, db)
			}
			if err == nil {
				t.Fatalf("got nil error; want the injected fault of %q", tt.plan)
			}
			if len(inj.Fired()) == 0 {
				t.Fatalf("nothing fired; trace:\n%s", inj.Trace())
			}
			open, commits, rolls := d.counts()
			if open != 0 {
				t.Errorf("the driver still has %d transaction(s) open (commits %d, rollbacks %d); want its Commit or Rollback called; trace:\n%s",
					open, commits, rolls, inj.Trace())
			}
			if commits != tt.wantCommits {
				t.Errorf("driver commits: got %d; want %d", commits, tt.wantCommits)
			}
		})
	}
}
