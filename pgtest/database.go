package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// ErrLeakedConnections is wrapped by [Database.Close] when the database still had
// connections after its pools were closed and the drop had to force them out.
var ErrLeakedConnections = errors.New("pgtest: connections still open at drop")

// Database is one fresh database (cloned from a migrated template) for one test or one run.
type Database struct {
	DB      *sql.DB // pgx stdlib pool on the fresh database; every connection carries AppName as application_name
	DSN     string  // URL DSN of the fresh database, with application_name=AppName
	AppName string  // unique to this test/database
	Admin   *sql.DB // a small pool on the same server (database "postgres", application_name "pgtest-admin"; superuser for docker and local, the DSN's user for dsn)
	Name    string  // database name

	server    *Server
	mu        sync.Mutex
	extra     []*sql.DB // pools opened by OpenDB
	closeOnce sync.Once
	closeErr  error
}

// NewDatabase creates a fresh database on the server, cloned from the template of
// [WithMigration] (built on first use) or from template1 without one. Close it when done.
func (s *Server) NewDatabase(ctx context.Context, opts ...Option) (*Database, error) {
	cfg := config{}
	for _, o := range opts {
		o(&cfg)
	}
	template := "template1"
	if cfg.migration != nil {
		t, err := s.template(ctx, cfg.migration)
		if err != nil {
			return nil, err
		}
		template = t
	}
	name := uniqueName("pgt_", cfg.hint)
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
		" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s from %s: %w", name, template, err)
	}
	d := &Database{AppName: name, Name: name, server: s}
	var err error
	if d.DSN, err = withDatabase(s.be.dsn(), name, name); err == nil {
		if d.DB, err = openDB(d.DSN, name); err == nil {
			d.Admin, err = openDB(s.be.dsn(), adminAppName)
		}
	}
	if err != nil {
		return nil, errors.Join(err, d.Close())
	}
	d.Admin.SetMaxOpenConns(4)
	d.Admin.SetMaxIdleConns(1)
	return d, nil
}

// Close closes both pools and drops the database WITH (FORCE). When connections were still
// open after the pools were closed (checked until a short deadline), the error wraps
// [ErrLeakedConnections]: this usually means the code under test is leaking connections.
func (d *Database) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.close() })
	return d.closeErr
}

func (d *Database) close() error {
	var errs []error
	d.mu.Lock()
	for _, db := range d.extra {
		errs = append(errs, db.Close())
	}
	d.mu.Unlock()
	if d.DB != nil {
		errs = append(errs, d.DB.Close())
	}
	if d.Admin != nil {
		errs = append(errs, d.Admin.Close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := d.server.admin
	// Backends end asynchronously after their client said goodbye: give them a moment.
	left, err := pollCount(ctx, admin, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", d.Name, 3*time.Second)
	if err != nil {
		errs = append(errs, fmt.Errorf("count connections to %s: %w", d.Name, err))
	}
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.Name}.Sanitize()+" WITH (FORCE)"); err != nil {
		errs = append(errs, fmt.Errorf("drop database %s: %w", d.Name, err))
	}
	if left > 0 {
		errs = append(errs, fmt.Errorf("drop database %s: %w: %d connection(s) of application_name %q were forced out; this usually means your code is leaking connections",
			d.Name, ErrLeakedConnections, left, d.AppName))
	}
	return errors.Join(errs...)
}

// pollCount runs a count query until it returns 0 or wait passes, and returns the last count.
func pollCount(ctx context.Context, db *sql.DB, query, arg string, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	backoff := 2 * time.Millisecond
	for {
		var n int
		if err := db.QueryRowContext(ctx, query, arg).Scan(&n); err != nil {
			return 0, err
		}
		if n == 0 || time.Now().After(deadline) {
			return n, nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return n, ctx.Err()
		case <-t.C:
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

// template returns the name of the migrated template for m, building it on first use.
func (s *Server) template(ctx context.Context, m *migration) (string, error) {
	s.mu.Lock()
	e := s.templates[m.name]
	if e == nil {
		e = &templateEntry{}
		s.templates[m.name] = e
	}
	s.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return e.name, e.err
	}
	e.name, e.err = s.buildTemplate(ctx, m)
	// A cancelled build is retried by the next caller; any other failure is final.
	e.done = e.err == nil || ctx.Err() == nil
	return e.name, e.err
}

// buildTemplate migrates a template database once per server, holding an advisory lock so
// that other processes sharing the server (parallel packages on one DSN) wait for it.
func (s *Server) buildTemplate(ctx context.Context, m *migration) (_ string, err error) {
	h := fnv.New64a()
	_, _ = h.Write([]byte(m.name))
	sum := h.Sum64()
	name := fmt.Sprintf("pgt_tpl_%s_%08x", sanitize(m.name, 30), uint32(sum))
	defer func() {
		if err != nil {
			err = fmt.Errorf("migrate template %s (%q): %w", name, m.name, err)
		}
	}()
	conn, err := s.admin.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(sum)); err != nil {
		return "", fmt.Errorf("take advisory lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", int64(sum))
	}()
	var isTemplate bool
	switch err := conn.QueryRowContext(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&isTemplate); {
	case err == nil && isTemplate:
		return name, nil // built by an earlier run or another process
	case err == nil:
		// Left half-built by a run that died: build it again.
		if _, err := conn.ExecContext(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return "", fmt.Errorf("drop half-built template: %w", err)
		}
	case !errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("look up template: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template1"); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	dsn, err := withDatabase(s.be.dsn(), name, "pgtest-migrate")
	if err != nil {
		return "", err
	}
	db, err := openDB(dsn, "pgtest-migrate")
	if err != nil {
		return "", err
	}
	merr := m.fn(ctx, db)
	if cerr := db.Close(); merr == nil && cerr != nil {
		merr = cerr
	}
	if merr != nil {
		_, _ = conn.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		return "", merr
	}
	// A template cannot be cloned while anyone is connected to it.
	if n, err := pollCount(ctx, s.admin, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name, 5*time.Second); err != nil {
		return "", err
	} else if n > 0 {
		return "", fmt.Errorf("%d connection(s) to the template still open after the migration's pool was closed; the migration must not keep connections (e.g. in goroutines)", n)
	}
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("mark template: %w", err)
	}
	return name, nil
}

// uniqueName is prefix + a readable part of hint + random hex, a valid identifier of at
// most 63 bytes (Postgres' limit for database and application names).
func uniqueName(prefix, hint string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	part := sanitize(hint, 63-len(prefix)-1-2*len(b))
	if part == "" {
		return prefix + hex.EncodeToString(b[:])
	}
	return prefix + part + "_" + hex.EncodeToString(b[:])
}

// sanitize keeps [a-z0-9_] of s (lowercased, other runs become one "_"), at most max bytes.
func sanitize(s string, max int) string {
	var sb strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			sb.WriteRune(r)
			under = false
		} else if !under && sb.Len() > 0 {
			sb.WriteByte('_')
			under = true
		}
		if sb.Len() >= max {
			break
		}
	}
	out := strings.TrimRight(sb.String(), "_")
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// ConnConfig parses the database's DSN into a pgx config (application_name set), for code
// that installs its own dial or network hooks (e.g. wire-level faults) before opening a pool.
func (d *Database) ConnConfig() (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(d.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse dsn of %s: %w", d.Name, err)
	}
	cc.RuntimeParams["application_name"] = d.AppName
	return cc, nil
}

// OpenDB opens another pgx stdlib pool on the database, its connections carrying AppName,
// with the connector passed through each wrap in order (e.g. a fault injector, then a leak
// tracker). [Database.Close] closes it too.
func (d *Database) OpenDB(wrap ...func(driver.Connector) driver.Connector) (*sql.DB, error) {
	cc, err := d.ConnConfig()
	if err != nil {
		return nil, err
	}
	c := stdlib.GetConnector(*cc)
	for _, w := range wrap {
		c = w(c)
	}
	db := sql.OpenDB(c)
	d.mu.Lock()
	d.extra = append(d.extra, db)
	d.mu.Unlock()
	return db, nil
}
