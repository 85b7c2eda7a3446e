package faults_test

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
)

// pgCode returns the SQLSTATE of err, or "" when it carries none.
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestServerPGTerminate terminates the sessions of one application_name:
// their next step fails with 57P01 or a closed connection, their backends are
// gone, and a session of another application_name lives on.
func TestServerPGTerminate(t *testing.T) {
	db := newItemsDB(t)
	ctx := t.Context()
	victim, err := db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Close() })
	if _, err := victim.ExecContext(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	otherCfg, otherApp := connConfig(t, db, "-bystander")
	bystander := openPool(t, otherCfg)
	if err := bystander.PingContext(ctx); err != nil {
		t.Fatal(err)
	}

	srv := faults.NewServer(db.Admin)
	n, err := srv.TerminateBackends(ctx, db.AppName)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Errorf("TerminateBackends: signalled %d backends; want at least 1", n)
	}
	if left, err := srv.Sessions(ctx, db.AppName); err != nil || left != 0 {
		t.Errorf("Sessions after terminate: got %d, %v; want 0", left, err)
	}
	_, err = victim.ExecContext(ctx, `SELECT 1`)
	switch {
	case err == nil:
		t.Fatal("step after terminate: got nil; want 57P01 or a closed connection")
	case pgCode(err) == "57P01", errorsIsAny(err, driver.ErrBadConn, net.ErrClosed, sql.ErrConnDone):
		t.Logf("step after terminate: %v", err)
	default:
		var netErr net.Error
		if !errors.As(err, &netErr) && err.Error() != "conn closed" && pgCode(err) == "" {
			t.Errorf("step after terminate: got %v; want 57P01 or a closed connection", err)
		}
	}
	if left, err := srv.Sessions(ctx, otherApp); err != nil || left != 1 {
		t.Errorf("Sessions of the bystander %s: got %d, %v; want 1 (untouched)", otherApp, left, err)
	}
	if err := bystander.PingContext(ctx); err != nil {
		t.Errorf("bystander after terminate: %v", err)
	}
}

// TestServerPGCancel cancels a running statement: it fails with 57014 and
// the session goes on.
func TestServerPGCancel(t *testing.T) {
	db := newItemsDB(t)
	ctx := t.Context()
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	done := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(ctx, `SELECT pg_sleep(30)`)
		done <- err
	}()
	srv := faults.NewServer(db.Admin)
	testkit.Eventually(t, func() bool {
		n, err := srv.CancelBackends(ctx, db.AppName)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}, "the statement to be cancelled")
	if err := <-done; pgCode(err) != "57014" {
		t.Fatalf("cancelled statement: got %v; want SQLSTATE 57014", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT 1`); err != nil {
		t.Errorf("session after cancel: %v; want it alive", err)
	}
}

// TestServerPGHoldLock holds a conflicting lock: the step hits lock_timeout
// (55P03) or statement_timeout (57014), and goes through once released.
func TestServerPGHoldLock(t *testing.T) {
	tests := []struct {
		name     string
		lockSQL  string
		stepSQL  string
		timeouts faults.Timeouts
		want     string
	}{
		{name: "table-lock-timeout", lockSQL: `LOCK TABLE items IN ACCESS EXCLUSIVE MODE`, stepSQL: `SELECT count(*) FROM items`,
			timeouts: faults.Timeouts{Lock: 50 * time.Millisecond}, want: "55P03"},
		{name: "table-statement-timeout", lockSQL: `LOCK TABLE items IN ACCESS EXCLUSIVE MODE`, stepSQL: `SELECT count(*) FROM items`,
			timeouts: faults.Timeouts{Statement: 50 * time.Millisecond}, want: "57014"},
		{name: "row-lock-timeout", lockSQL: `SELECT id FROM items WHERE id = 1 FOR UPDATE`, stepSQL: `UPDATE items SET id = 10 WHERE id = 1`,
			timeouts: faults.Timeouts{Lock: 50 * time.Millisecond}, want: "55P03"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newItemsDB(t)
			ctx := t.Context()
			if _, err := db.DB.ExecContext(ctx, `INSERT INTO items VALUES (1)`); err != nil {
				t.Fatal(err)
			}
			lockCfg, lockApp := connConfig(t, db, "-lock")
			lockPool := openPool(t, lockCfg)
			srv := faults.NewServer(db.Admin, faults.WithLockDB(lockPool))
			release, err := srv.HoldLock(ctx, tt.lockSQL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { release() })
			conn, err := db.DB.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := conn.ExecContext(ctx, tt.timeouts.SQL()); err != nil {
				t.Fatalf("%s: %v", tt.timeouts.SQL(), err)
			}
			_, err = conn.ExecContext(ctx, tt.stepSQL)
			if got := pgCode(err); got != tt.want {
				t.Fatalf("step under the held lock: got %v (SQLSTATE %q); want SQLSTATE %s", err, got, tt.want)
			}
			if err := release(); err != nil {
				t.Fatalf("release: %v", err)
			}
			if _, err := conn.ExecContext(ctx, `RESET ALL`); err != nil { // no tight timeout on a loaded machine
				t.Fatal(err)
			}
			if err := release(); err != nil {
				t.Errorf("second release: %v; want nil", err)
			}
			if _, err := conn.ExecContext(ctx, tt.stepSQL); err != nil {
				t.Errorf("step after release: %v", err)
			}
			if n, err := srv.Sessions(ctx, lockApp); err != nil || n != 1 {
				t.Errorf("lock holder sessions: got %d, %v; want 1, idle in its pool %+v", n, err, lockPool.Stats())
			}
		})
	}
}

// TestServerPGWaitBlocked sees a step blocked on the held lock, then lets
// it through by releasing the lock.
func TestServerPGWaitBlocked(t *testing.T) {
	db := newItemsDB(t)
	ctx := t.Context()
	lockCfg, _ := connConfig(t, db, "-lock")
	srv := faults.NewServer(db.Admin, faults.WithLockDB(openPool(t, lockCfg)))
	release, err := srv.HoldLock(ctx, `LOCK TABLE items IN ACCESS EXCLUSIVE MODE`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release() })
	done := make(chan error, 1)
	go func() {
		_, err := db.DB.ExecContext(ctx, `INSERT INTO items VALUES (5)`)
		done <- err
	}()
	if err := srv.WaitBlocked(ctx, db.AppName); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked INSERT after release: %v", err)
	}
	if got := itemIDs(t, db.DB); !slices.Equal(got, []int{5}) {
		t.Errorf("rows: got %v; want [5]", got)
	}
}

// TestServerPGDatabaseTimeouts sets a database default statement_timeout:
// a new session inherits it (57014 on a slow statement); after restore a new
// session does not.
func TestServerPGDatabaseTimeouts(t *testing.T) {
	db := newItemsDB(t)
	ctx := t.Context()
	srv := faults.NewServer(db.Admin)
	settings := func() []string {
		var v []string
		err := db.Admin.QueryRowContext(ctx, `SELECT coalesce(array_agg(c ORDER BY c), '{}') FROM pg_db_role_setting s
			JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c WHERE d.datname = $1 AND s.setrole = 0`,
			db.Name).Scan(pgtype.NewMap().SQLScanner(&v))
		if err != nil {
			t.Fatalf("read database settings: %v", err)
		}
		return v
	}
	slowStatement := func(suffix string) error {
		cfg, _ := connConfig(t, db, suffix)
		pool := openPool(t, cfg)
		defer pool.Close()
		_, err := pool.ExecContext(ctx, `SELECT pg_sleep(0.2)`)
		return err
	}
	restore, err := srv.SetDatabaseTimeouts(ctx, db.Name, faults.Timeouts{Statement: 50 * time.Millisecond, Lock: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restore() })
	if got, want := settings(), []string{"lock_timeout=1000", "statement_timeout=50"}; !slices.Equal(got, want) {
		t.Errorf("database settings: got %v; want %v", got, want)
	}
	if err := slowStatement("-new1"); pgCode(err) != "57014" {
		t.Errorf("slow statement in a new session: got %v; want SQLSTATE 57014", err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if got := settings(); len(got) != 0 {
		t.Errorf("database settings after restore: got %v; want none", got)
	}
	if err := slowStatement("-new2"); err != nil {
		t.Errorf("slow statement in a new session after restore: got %v; want no error", err)
	}
}

// TestServerPGDeadlock makes the session under test the victim of a
// deadlock: it holds row 2 and asks for row 1, held by the lock holder, which
// then asks for row 2.
func TestServerPGDeadlock(t *testing.T) {
	db := newItemsDB(t)
	ctx := t.Context()
	if _, err := db.DB.ExecContext(ctx, `INSERT INTO items VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	lockCfg, _ := connConfig(t, db, "-lock")
	srv := faults.NewServer(db.Admin, faults.WithLockDB(openPool(t, lockCfg)))
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if _, err := tx.ExecContext(ctx, `SELECT id FROM items WHERE id = 2 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	release, err := srv.HoldLockForDeadlock(ctx,
		`SELECT id FROM items WHERE id = 1 FOR UPDATE`, db.AppName, `SELECT id FROM items WHERE id = 2 FOR UPDATE`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release() })
	_, err = tx.ExecContext(ctx, `UPDATE items SET id = 10 WHERE id = 1`)
	if got := pgCode(err); got != "40P01" {
		t.Fatalf("step in the deadlock: got %v (SQLSTATE %q); want SQLSTATE 40P01", err, got)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Errorf("release: %v; want the holder's second lock granted after the victim rolled back", err)
	}
	if got := itemIDs(t, db.DB); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("rows: got %v; want [1 2] (the victim's update rolled back)", got)
	}
}
