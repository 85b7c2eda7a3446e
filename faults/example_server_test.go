package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessionsafe/sessionsafe/faults"
)

// TerminateBackends ends every session of one application_name, as an
// administrator (or a failover) would; the session's next step fails with
// SQLSTATE 57P01 or a closed connection.
func ExampleServer_TerminateBackends() {
	var admin *sql.DB // a superuser pool on the same server, e.g. pgtest.Database.Admin
	srv := faults.NewServer(admin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := srv.TerminateBackends(ctx, "my-test-app") // waits until they are gone
	fmt.Println(n, err)
}

// HoldLock takes a conflicting lock from a connection of its own; the step
// under test then runs into its lock_timeout.
func ExampleServer_HoldLock() {
	var admin, lockPool, db *sql.DB // lockPool: on the tested database, another application_name
	srv := faults.NewServer(admin, faults.WithLockDB(lockPool))
	ctx := context.Background()
	release, err := srv.HoldLock(ctx, `LOCK TABLE items IN ACCESS EXCLUSIVE MODE`)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer release()

	conn, err := db.Conn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, faults.Timeouts{Lock: 100 * time.Millisecond}.SQL()); err != nil {
		fmt.Println(err)
		return
	}
	_, err = conn.ExecContext(ctx, `SELECT count(*) FROM items`)
	var pgErr *pgconn.PgError
	fmt.Println(errors.As(err, &pgErr) && pgErr.Code == "55P03")
}

// HoldLockForDeadlock makes the session under test the victim of a
// deadlock: it holds row 2 from an earlier statement of its transaction,
// the holder takes row 1, and once the session waits for row 1 the holder
// asks for row 2.
func ExampleServer_HoldLockForDeadlock() {
	var admin, lockPool *sql.DB // lockPool: on the tested database, another application_name
	var tx *sql.Tx              // the session under test, application_name "my-test-app"
	ctx := context.Background()
	srv := faults.NewServer(admin, faults.WithLockDB(lockPool))
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM items WHERE id = 2 FOR UPDATE`); err != nil {
		fmt.Println(err)
		return
	}
	release, err := srv.HoldLockForDeadlock(ctx, `SELECT 1 FROM items WHERE id = 1 FOR UPDATE`,
		"my-test-app", `SELECT 1 FROM items WHERE id = 2 FOR UPDATE`)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = tx.ExecContext(ctx, `UPDATE items SET id = 10 WHERE id = 1`)
	var pgErr *pgconn.PgError
	fmt.Println(errors.As(err, &pgErr) && pgErr.Code == "40P01") // deadlock detected
	_ = tx.Rollback()
	_ = release()
}

// Timeouts turns a blocked or slow step into an error: SQL gives the SET
// statements for the session under test.
func ExampleTimeouts_SQL() {
	fmt.Println(faults.Timeouts{Statement: 2 * time.Second, Lock: 100 * time.Millisecond}.SQL())
	// Output:
	// SET statement_timeout = 2000; SET lock_timeout = 100
}
