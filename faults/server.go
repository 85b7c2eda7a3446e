package faults

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrServerAppName is returned (wrapped) when an application_name is empty:
// an empty name would match sessions that are not the caller's.
var ErrServerAppName = errors.New("faults: server: empty application_name")

// serverName is name as the server stores it: application_name is cut to
// NAMEDATALEN-1 (63) bytes, so a longer name must be cut to match.
func serverName(name string) string {
	const maxName = 63
	if len(name) <= maxName {
		return name
	}
	name = name[:maxName]
	for !utf8.ValidString(name) { // never split a character
		name = name[:len(name)-1]
	}
	return name
}

// Server performs server-level faults — what a database administrator, a
// failover or the server itself does to a session from outside it — through
// an admin pool (a superuser, or a role allowed to signal the target
// sessions). Sessions are found by application_name, never by PID alone
// (PIDs are reused), and the admin's own backend is never touched. A Server
// is safe for concurrent use.
type Server struct {
	admin  *sql.DB
	lockDB *sql.DB
	poll   time.Duration
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithLockDB sets the pool HoldLock takes its locks from (default: the admin
// pool). Locks only conflict within one database, so give it a pool on the
// database under test — best a pool of its own with a different
// application_name, so the lock holder neither takes a connection from the
// pool under test nor shows up as one of its sessions.
func WithLockDB(db *sql.DB) ServerOption {
	return func(s *Server) { s.lockDB = db }
}

// NewServer returns a Server acting through admin. Every method taking an
// application_name matches it as the server stores it (cut to 63 bytes).
func NewServer(admin *sql.DB, opts ...ServerOption) *Server {
	s := &Server{admin: admin, lockDB: admin, poll: 5 * time.Millisecond}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Sessions returns how many backends other than the admin's own carry
// application_name appName.
func (s *Server) Sessions(ctx context.Context, appName string) (int, error) {
	if appName == "" {
		return 0, fmt.Errorf("count sessions: %w", ErrServerAppName)
	}
	var n int
	err := s.admin.QueryRowContext(ctx,
		`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`,
		serverName(appName)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sessions of %q: %w", appName, err)
	}
	return n, nil
}

// TerminateBackends terminates every backend whose application_name is
// appName (pg_terminate_backend; the session's next step fails with SQLSTATE
// 57P01 or a closed connection) and waits until they are gone from
// pg_stat_activity or ctx ends. It returns how many were signalled.
func (s *Server) TerminateBackends(ctx context.Context, appName string) (int, error) {
	n, err := s.signal(ctx, "pg_terminate_backend", appName, false)
	if err != nil {
		return n, fmt.Errorf("terminate backends: %w", err)
	}
	if err := s.WaitGone(ctx, appName); err != nil {
		return n, fmt.Errorf("terminate backends: %w", err)
	}
	return n, nil
}

// CancelBackends cancels the running statement of every active backend whose
// application_name is appName (pg_cancel_backend: the statement fails with
// SQLSTATE 57014, the session lives on). It returns how many were signalled.
func (s *Server) CancelBackends(ctx context.Context, appName string) (int, error) {
	n, err := s.signal(ctx, "pg_cancel_backend", appName, true)
	if err != nil {
		return n, fmt.Errorf("cancel backends: %w", err)
	}
	return n, nil
}

func (s *Server) signal(ctx context.Context, fn, appName string, activeOnly bool) (int, error) {
	if appName == "" {
		return 0, ErrServerAppName
	}
	q := `SELECT count(*) FILTER (WHERE ` + fn + `(pid)) FROM pg_stat_activity
	      WHERE application_name = $1 AND pid <> pg_backend_pid()`
	if activeOnly {
		q += ` AND state = 'active'`
	}
	var n int
	if err := s.admin.QueryRowContext(ctx, q, serverName(appName)).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s of %q: %w", fn, appName, err)
	}
	return n, nil
}

// WaitGone polls pg_stat_activity until no backend carries appName, or ctx
// ends.
func (s *Server) WaitGone(ctx context.Context, appName string) error {
	for {
		n, err := s.Sessions(ctx, appName)
		if err != nil {
			return fmt.Errorf("wait for sessions of %q to end: %w", appName, err)
		}
		if n == 0 {
			return nil
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for %d session(s) of %q to end: %w", n, appName, ctx.Err())
		case <-t.C:
		}
	}
}

// WaitBlocked polls until a backend of appName waits for a lock, or ctx ends:
// the moment a step has reached a lock held by HoldLock.
func (s *Server) WaitBlocked(ctx context.Context, appName string) error {
	return s.waitLockWaiters(ctx, appName, true)
}

// WaitUnblocked polls until no backend of appName waits for a lock, or ctx
// ends.
func (s *Server) WaitUnblocked(ctx context.Context, appName string) error {
	return s.waitLockWaiters(ctx, appName, false)
}

func (s *Server) waitLockWaiters(ctx context.Context, appName string, blocked bool) error {
	what := "a blocked session"
	if !blocked {
		what = "no blocked session"
	}
	if appName == "" {
		return fmt.Errorf("wait for %s: %w", what, ErrServerAppName)
	}
	for {
		var n int
		err := s.admin.QueryRowContext(ctx,
			`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
			serverName(appName)).Scan(&n)
		if err != nil {
			return fmt.Errorf("wait for %s of %q: %w", what, appName, err)
		}
		if (n > 0) == blocked {
			return nil
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for %s of %q: %w", what, appName, ctx.Err())
		case <-t.C:
		}
	}
}

// HoldLock runs lockSQL (e.g. "LOCK TABLE threads IN ACCESS EXCLUSIVE MODE" or
// "SELECT 1 FROM threads WHERE id = '...' FOR UPDATE") in a transaction on a
// connection of its own from the lock pool (see WithLockDB), and keeps the
// transaction open until release is called: a step needing a conflicting
// lock then blocks until its lock_timeout (55P03), statement_timeout (57014),
// context or a deadlock (40P01). ctx bounds taking the lock only. release
// rolls back and returns the connection; it is safe to call more than once.
func (s *Server) HoldLock(ctx context.Context, lockSQL string) (release func() error, err error) {
	conn, err := s.lockDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("hold lock: get connection: %w", err)
	}
	// database/sql rolls a transaction back when its context ends: the lock
	// must outlive ctx.
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("hold lock: begin: %w", err), conn.Close())
	}
	if _, err := tx.ExecContext(ctx, lockSQL); err != nil {
		return nil, errors.Join(fmt.Errorf("hold lock: %s: %w", lockSQL, err), tx.Rollback(), conn.Close())
	}
	return sync.OnceValue(func() error {
		rerr := tx.Rollback()
		if rerr != nil {
			rerr = fmt.Errorf("release lock: rollback: %w", rerr)
		}
		return errors.Join(rerr, conn.Close())
	}), nil
}

// HoldLockForDeadlock sets up a deadlock with the session appName: it takes
// lockSQL like HoldLock, then, once a backend of appName waits for a lock
// (the step under test has run into lockSQL's lock), runs conflictSQL in the
// same transaction, asking for a lock that session already holds. The
// session under test waited first, so its deadlock check (after the server's
// deadlock_timeout, 1s by default) runs first and the step fails with
// SQLSTATE 40P01; conflictSQL then goes through. The step must hold, from an
// earlier statement of its transaction, the lock conflictSQL asks for.
// release waits for conflictSQL to finish, rolls back and returns the
// connection; it reports conflictSQL's own error, if any, and is safe to call
// more than once. ctx bounds taking the first lock and the wait for the
// session to block.
func (s *Server) HoldLockForDeadlock(ctx context.Context, lockSQL, appName, conflictSQL string) (release func() error, err error) {
	if appName == "" {
		return nil, fmt.Errorf("hold lock for deadlock: %w", ErrServerAppName)
	}
	conn, err := s.lockDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("hold lock for deadlock: get connection: %w", err)
	}
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("hold lock for deadlock: begin: %w", err), conn.Close())
	}
	if _, err := tx.ExecContext(ctx, lockSQL); err != nil {
		return nil, errors.Join(fmt.Errorf("hold lock for deadlock: %s: %w", lockSQL, err), tx.Rollback(), conn.Close())
	}
	done := make(chan error, 1)
	go func() {
		if err := s.WaitBlocked(ctx, appName); err != nil {
			done <- err
			return
		}
		_, err := tx.ExecContext(context.WithoutCancel(ctx), conflictSQL)
		if err != nil {
			err = fmt.Errorf("%s: %w", conflictSQL, err)
		}
		done <- err
	}()
	return sync.OnceValue(func() error {
		werr := <-done
		if werr != nil {
			werr = fmt.Errorf("hold lock for deadlock: %w", werr)
		}
		rerr := tx.Rollback()
		if rerr != nil {
			rerr = fmt.Errorf("release lock: rollback: %w", rerr)
		}
		return errors.Join(werr, rerr, conn.Close())
	}), nil
}

// Timeouts are session timeouts that turn a blocked or slow step into an
// error: Statement gives SQLSTATE 57014, Lock 55P03, IdleInTransaction ends
// the session (25P03) when it sits idle inside a transaction. Zero leaves a
// timeout as it is.
type Timeouts struct {
	Statement         time.Duration
	Lock              time.Duration
	IdleInTransaction time.Duration
}

func (t Timeouts) settings() [][2]string {
	var out [][2]string
	add := func(name string, d time.Duration) {
		if d > 0 {
			out = append(out, [2]string{name, fmt.Sprintf("%d", max(1, d.Milliseconds()))})
		}
	}
	add("statement_timeout", t.Statement)
	add("lock_timeout", t.Lock)
	add("idle_in_transaction_session_timeout", t.IdleInTransaction)
	return out
}

// SQL returns the SET statements that apply t to the session that runs
// them, e.g. "SET statement_timeout = 50; SET lock_timeout = 20" (values in
// milliseconds), or "" when t is zero. Run it on the session under test (it
// lasts for the session; SET LOCAL for one transaction is the caller's
// choice).
func (t Timeouts) SQL() string {
	var b strings.Builder
	for i, kv := range t.settings() {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "SET %s = %s", kv[0], kv[1])
	}
	return b.String()
}

// SetDatabaseTimeouts makes t the default of every new session on database
// (ALTER DATABASE ... SET); sessions already open keep theirs. restore resets
// those settings; it is safe to call more than once.
func (s *Server) SetDatabaseTimeouts(ctx context.Context, database string, t Timeouts) (restore func() error, err error) {
	if database == "" {
		return nil, errors.New("set database timeouts: empty database name")
	}
	ident := `"` + strings.ReplaceAll(database, `"`, `""`) + `"`
	var settings [][2]string // the ones applied, for restore
	restore = sync.OnceValue(func() error {
		var errs []error
		for _, kv := range settings {
			if _, err := s.admin.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("ALTER DATABASE %s RESET %s", ident, kv[0])); err != nil {
				errs = append(errs, fmt.Errorf("restore database timeouts on %s: %w", database, err))
			}
		}
		return errors.Join(errs...)
	})
	for _, kv := range t.settings() {
		if _, err := s.admin.ExecContext(ctx, fmt.Sprintf("ALTER DATABASE %s SET %s = %s", ident, kv[0], kv[1])); err != nil {
			return nil, errors.Join(fmt.Errorf("set database timeouts on %s: %w", database, err), restore())
		}
		settings = append(settings, kv)
	}
	return restore, nil
}
