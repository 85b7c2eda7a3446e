package leakcheck_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/leakcheck"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// The planted server leaks. Each leaves a backend in a state, and registers
// the cleanup that ends it.

// idleInTx begins a transaction with raw SQL on a held connection and returns.
func idleInTx(t testing.TB, db *sql.DB) {
	t.Helper()
	conn := rawConn(t, db)
	if _, err := conn.ExecContext(ctx(t), "BEGIN"); err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := conn.ExecContext(ctx(t), "UPDATE items SET name = 'x' WHERE id = 1"); err != nil {
		t.Fatalf("update: %v", err)
	}
}

// abortedTx lets a statement fail inside a raw transaction and returns.
func abortedTx(t testing.TB, db *sql.DB) {
	t.Helper()
	conn := rawConn(t, db)
	if _, err := conn.ExecContext(ctx(t), "BEGIN"); err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := conn.ExecContext(ctx(t), "SELECT 1/0"); err == nil {
		t.Fatalf("SELECT 1/0 succeeded; want division by zero")
	}
}

// rowLock locks a row in a transaction it never ends.
func rowLock(t testing.TB, db *sql.DB) {
	t.Helper()
	tx, err := db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	var id int
	if err := tx.QueryRowContext(ctx(t), "SELECT id FROM items WHERE id = 2 FOR UPDATE").Scan(&id); err != nil {
		t.Fatalf("select for update: %v", err)
	}
}

// advisoryLock takes a session-level advisory lock and gives the connection back.
func advisoryLock(t testing.TB, db *sql.DB) {
	t.Helper()
	if _, err := db.ExecContext(ctx(t), "SELECT pg_advisory_lock(4242)"); err != nil {
		t.Fatalf("advisory lock: %v", err)
	}
	t.Cleanup(func() {
		// The lock is on whichever pooled connection ran it: closing the idle ones ends it.
		db.SetMaxIdleConns(0)
	})
}

// stillActive starts a query that outlives the call.
func stillActive(t testing.TB, db *sql.DB) {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	started, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		conn, err := db.Conn(c)
		if err != nil {
			close(started)
			return
		}
		defer conn.Close()
		close(started)
		_, _ = conn.ExecContext(c, "SELECT pg_sleep(30)")
	}()
	<-started
	t.Cleanup(func() { cancel(); <-done })
	testkit.EventuallyNil(t, func() error {
		select {
		case <-done:
			t.Fatalf("the query ended early")
		default:
		}
		var n int
		err := db.QueryRowContext(ctx(t), `SELECT count(*) FROM pg_stat_activity
			WHERE state = 'active' AND query = 'SELECT pg_sleep(30)' AND datname = current_database()`).Scan(&n)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if n != 1 {
			return fmt.Errorf("%d backend(s) run it; want 1", n)
		}
		return nil
	}, "the server to run pg_sleep(30)")
}

// cleanServerUse does everything right.
func cleanServerUse(t testing.TB, db *sql.DB) {
	t.Helper()
	tx, err := db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.ExecContext(ctx(t), "UPDATE items SET name = 'y' WHERE id = 1"); err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if _, err := db.ExecContext(ctx(t), "SELECT pg_advisory_xact_lock(4242)"); err != nil {
		t.Fatalf("xact lock: %v", err)
	}
	if _, err := db.ExecContext(ctx(t), "SELECT 1/0"); err == nil {
		t.Fatalf("SELECT 1/0 succeeded")
	}
}

func rawConn(t testing.TB, db *sql.DB) *sql.Conn {
	t.Helper()
	conn, err := db.Conn(ctx(t))
	if err != nil {
		t.Fatalf("conn: %v", err)
	}
	t.Cleanup(func() { _ = conn.Raw(func(any) error { return errors.New("discard") }); _ = conn.Close() })
	return conn
}

func TestServerOnPostgres(t *testing.T) {
	tests := []struct {
		name  string
		plant func(testing.TB, *sql.DB)
		opts  []leakcheck.Option
		want  []string
	}{
		{"clean", cleanServerUse, nil, nil},
		{"clean-under-threshold", cleanServerUse, []leakcheck.Option{leakcheck.WithLongTransaction(time.Minute)}, nil},
		{"idle-in-transaction", idleInTx, nil, []string{"is idle in transaction", "last query: UPDATE items SET name = 'x' WHERE id = 1", "transaction open for", "holds RowExclusiveLock on relation oid"}},
		{"aborted-transaction", abortedTx, nil, []string{"is idle in an aborted transaction", "last query: SELECT 1/0"}},
		{"row-lock", rowLock, nil, []string{"is idle in transaction", "holds RowShareLock on relation oid"}},
		{"session-advisory-lock", advisoryLock, nil, []string{"is idle but still holds 1 lock", "ExclusiveLock on advisory lock 4242"}},
		{"still-active", stillActive, nil, []string{"is still active after the operation returned", "last query: SELECT pg_sleep(30)"}},
		{"long-transaction", stillActive, []leakcheck.Option{leakcheck.WithLongTransaction(10 * time.Millisecond)}, []string{"has had a transaction open for", "(threshold 10ms)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newPG(t)
			tt.plant(t, d.DB)
			err := leakcheck.FindServer(ctx(t), d.Admin, d.AppName, append(tt.opts, leakcheck.WithTimeout(short))...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("FindServer on clean code: %v", err)
				}
				return
			}
			if !leakcheck.Has(err, leakcheck.CheckServer) {
				t.Fatalf("FindServer = %v; want a server finding", err)
			}
			mustContain(t, err, append(tt.want, d.AppName)...)
			t.Logf("the report:\n%v", err)
		})
	}
}

// TestServerPreparedTransaction plants a prepared transaction and requires
// the server check to report it, then to pass once it is rolled back. The
// servers pgtest starts allow a few prepared transactions; only an external
// server (SESSIONSAFE_PG_DSN) may allow none, and then the test skips.
func TestServerPreparedTransaction(t *testing.T) {
	d := newPG(t)
	var max int
	if err := d.Admin.QueryRowContext(ctx(t), "SELECT current_setting('max_prepared_transactions')::int").Scan(&max); err != nil {
		t.Fatalf("max_prepared_transactions: %v", err)
	}
	if max == 0 {
		if os.Getenv(pgtest.EnvDSN) != "" {
			t.Skipf("max_prepared_transactions = 0 on the server of %s: no transaction can be prepared", pgtest.EnvDSN)
		}
		t.Fatal("max_prepared_transactions: got 0; want the small non-zero value pgtest starts its servers with (see pgtest's serverArgs)")
	}
	gid := "leakcheck-" + d.Name
	conn := rawConn(t, d.DB)
	for _, q := range []string{"BEGIN", "UPDATE items SET name = 'p' WHERE id = 1", "PREPARE TRANSACTION '" + gid + "'"} {
		if _, err := conn.ExecContext(ctx(t), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rolledBack := false
	rollback := func() error {
		if rolledBack {
			return nil
		}
		rolledBack = true
		_, err := d.DB.ExecContext(context.Background(), "ROLLBACK PREPARED '"+gid+"'")
		return err
	}
	t.Cleanup(func() { _ = rollback() })

	err := leakcheck.FindServer(ctx(t), d.Admin, d.AppName, leakcheck.WithTimeout(short))
	if !leakcheck.Has(err, leakcheck.CheckPreparedTxn) {
		t.Fatalf("FindServer with transaction %q prepared: got %v; want a %s finding", gid, err, leakcheck.CheckPreparedTxn)
	}
	mustContain(t, err, "prepared transaction \""+gid+"\"", "ROLLBACK PREPARED")

	if err := rollback(); err != nil {
		t.Fatalf("ROLLBACK PREPARED: %v", err)
	}
	if err := leakcheck.FindServer(ctx(t), d.Admin, d.AppName, leakcheck.WithTimeout(short)); err != nil {
		t.Fatalf("FindServer once the prepared transaction is rolled back: %v; want nil", err)
	}
}
