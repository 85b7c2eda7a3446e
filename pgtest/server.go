package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/internal/redact"
)

// serverArgs is the postgres command line every provider that starts a server (local,
// docker) passes, in one place: room for the parallel tests' pools, durability traded for
// speed, UTC, and a few prepared-transaction slots, so that a test can plant a prepared
// transaction and see leakcheck report it (with the default of 0, PREPARE TRANSACTION fails).
func serverArgs() []string {
	return []string{
		"-c", "max_connections=300",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "timezone=UTC",
		"-c", "max_prepared_transactions=4",
	}
}

// ErrNoPostgres is wrapped by every error of [Start] that means no provider could serve;
// the error text gives each provider's reason.
var ErrNoPostgres = errors.New("pgtest: no postgres available")

// ErrNotSupported is returned by [Server.Restart], [Server.Pause] and [Server.Resume] on a
// provider that cannot do it (dsn).
var ErrNotSupported = errors.New("pgtest: not supported by this provider")

// adminAppName is the application_name of the connections pgtest itself opens.
const adminAppName = "pgtest-admin"

// backend is one provider's running server.
type backend interface {
	// dsn is a superuser URL DSN to database "postgres", without application_name.
	dsn() string
	restart(ctx context.Context) error
	pause(ctx context.Context) error
	resume(ctx context.Context) error
	close() error
}

// Server is one running PostgreSQL server from one provider; [Server.NewDatabase] gives
// fresh databases on it. Close it when done.
type Server struct {
	provider string
	cfg      config
	be       backend
	admin    *sql.DB
	ready    time.Duration
	version  string

	opMu sync.Mutex // one Restart, Pause or Resume at a time

	mu        sync.Mutex
	templates map[string]*templateEntry
	closed    bool
}

type templateEntry struct {
	mu   sync.Mutex
	done bool
	name string
	err  error
}

// Start provisions a server with the first provider that can serve (see the package doc).
// Every error names each provider tried and why it did not serve; it wraps [ErrNoPostgres]
// when none could.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	cfg := newConfig(opts)
	var order []string
	switch cfg.provider {
	case ProviderAuto:
		if cfg.dsn != "" {
			order = []string{ProviderDSN}
		} else {
			order = []string{ProviderDocker, ProviderLocal}
		}
	case ProviderDSN, ProviderDocker, ProviderLocal:
		order = []string{cfg.provider}
	case ProviderNone:
		return nil, fmt.Errorf("start postgres: %w: disabled (%s=none)", ErrNoPostgres, EnvProvider)
	default:
		return nil, fmt.Errorf("start postgres: unknown provider %q in %s (want auto, dsn, docker or local): %w",
			cfg.provider, EnvProvider, ErrNoPostgres)
	}
	var reasons []string
	for _, p := range order {
		began := time.Now()
		be, err := startBackend(ctx, p, cfg, cfg.provider == ProviderAuto)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", p, err))
			if cfg.provider == ProviderAuto && ctx.Err() == nil {
				cfg.logger.Info("pgtest: provider did not serve", "provider", p, "reason", err.Error())
				continue
			}
			break
		}
		s, err := newServer(ctx, p, cfg, be, time.Since(began))
		if err != nil {
			_ = be.close()
			reasons = append(reasons, fmt.Sprintf("%s: %v", p, err))
			if cfg.provider == ProviderAuto && ctx.Err() == nil {
				continue
			}
			break
		}
		s.announce()
		return s, nil
	}
	return nil, fmt.Errorf("start postgres: %w: %s", ErrNoPostgres, strings.Join(reasons, "; "))
}

func startBackend(ctx context.Context, provider string, cfg config, auto bool) (backend, error) {
	switch provider {
	case ProviderDSN:
		return startDSN(ctx, cfg)
	case ProviderDocker:
		return startDocker(ctx, cfg, auto)
	case ProviderLocal:
		return startLocal(ctx, cfg)
	}
	return nil, fmt.Errorf("unknown provider %q", provider)
}

func newServer(ctx context.Context, provider string, cfg config, be backend, ready time.Duration) (*Server, error) {
	admin, err := openDB(be.dsn(), adminAppName)
	if err != nil {
		return nil, err
	}
	admin.SetMaxOpenConns(8)
	admin.SetMaxIdleConns(2)
	var version string
	if err := admin.QueryRowContext(ctx, "SHOW server_version").Scan(&version); err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("query server version at %s: %w", RedactDSN(be.dsn()), err)
	}
	return &Server{
		provider:  provider,
		cfg:       cfg,
		be:        be,
		admin:     admin,
		ready:     ready,
		version:   version,
		templates: map[string]*templateEntry{},
	}, nil
}

// announce logs which provider served and how long it took, and appends the same line to
// SESSIONSAFE_PG_REPORT when set.
func (s *Server) announce() {
	where := "program"
	if wd, err := os.Getwd(); err == nil {
		where = filepath.Base(wd)
	}
	s.cfg.logger.Info("pgtest: postgres ready", "provider", s.provider, "ready_in", s.ready.Round(time.Millisecond),
		"version", s.version, "server", RedactDSN(s.be.dsn()), "for", where)
	// The report answers "which provider served this package's tests": only the per-binary
	// servers of New go there, not servers a test starts for itself.
	if s.cfg.report == "" || !s.cfg.perBinary {
		return
	}
	line := fmt.Sprintf("pgtest: %-12s provider=%-6s ready_in=%-8s postgres=%s server=%s\n",
		where, s.provider, s.ready.Round(time.Millisecond), s.version, RedactDSN(s.be.dsn()))
	f, err := os.OpenFile(s.cfg.report, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		s.cfg.logger.Warn("pgtest: cannot append to report file", "file", s.cfg.report, "err", err)
		return
	}
	_, _ = f.WriteString(line)
	_ = f.Close()
}

// Provider names the provider that serves: "dsn", "docker" or "local".
func (s *Server) Provider() string { return s.provider }

// ReadyIn is how long the provider took to have the server accept connections.
func (s *Server) ReadyIn() time.Duration { return s.ready }

// Version is the server's version (SHOW server_version).
func (s *Server) Version() string { return s.version }

// DSN is a superuser URL DSN to the server's "postgres" database. It may hold a password:
// never log it (use [RedactDSN]).
func (s *Server) DSN() string { return s.be.dsn() }

// Restart stops and starts the server (docker, local); the address stays the same, and
// open connections break (pools hand out a broken connection once; pgtest's own pool is
// flushed). It returns [ErrNotSupported] for dsn.
func (s *Server) Restart(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.be.restart(ctx); err != nil {
		return fmt.Errorf("restart %s postgres: %w", s.provider, err)
	}
	// pgtest's idle connections died with the old server: drop them.
	s.admin.SetMaxIdleConns(0)
	s.admin.SetMaxIdleConns(2)
	return nil
}

// Pause freezes the whole server (docker pause; SIGSTOP to the local postmaster and every
// backend): connections stay open but get no answer until [Server.Resume] (or
// [Server.Restart], which resumes first). Pausing a paused server does nothing.
func (s *Server) Pause(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.be.pause(ctx); err != nil {
		return fmt.Errorf("pause %s postgres: %w", s.provider, err)
	}
	return nil
}

// Resume undoes [Server.Pause]; resuming a running server does nothing.
func (s *Server) Resume(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.be.resume(ctx); err != nil {
		return fmt.Errorf("resume %s postgres: %w", s.provider, err)
	}
	return nil
}

// Close closes pgtest's own pool and stops the server (docker, local: the container or the
// cluster and its directory are removed). Databases still open are not dropped.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.admin.Close()
	if berr := s.be.close(); berr != nil {
		err = errors.Join(err, fmt.Errorf("stop %s postgres: %w", s.provider, berr))
	}
	return err
}

// openDB opens a pgx stdlib pool on dsn whose connections carry appName.
func openDB(dsn, appName string) (*sql.DB, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn %s: %w", RedactDSN(dsn), err)
	}
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["application_name"] = appName
	return stdlib.OpenDB(*cc), nil
}

// withDatabase returns dsn with its database and application_name replaced.
func withDatabase(dsn, database, appName string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("parse dsn %s: %w", RedactDSN(dsn), errors.New("not a URL"))
	}
	u.Path = "/" + database
	q := u.Query()
	if appName != "" {
		q.Set("application_name", appName)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// RedactDSN returns dsn with its password replaced by "xxxxx", for logs and errors. It
// reads URL DSNs (postgres://user:pass@host/db, ?password=) and keyword/value DSNs
// (password='se cret'), quoted, escaped, percent-encoded or not, and errs on the side of
// hiding too much.
func RedactDSN(dsn string) string { return redact.DSN(dsn) }
