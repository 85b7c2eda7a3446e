package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// dsnServer is an existing server; pgtest only creates and drops databases on it.
type dsnServer struct{ url string }

func startDSN(ctx context.Context, cfg config) (backend, error) {
	if cfg.dsn == "" {
		return nil, fmt.Errorf("%s is not set", EnvDSN)
	}
	u, err := url.Parse(cfg.dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%s must be a URL DSN (postgres://user:password@host:port/db?sslmode=disable), got %s",
			EnvDSN, RedactDSN(cfg.dsn))
	}
	// Databases are created from, and dropped through, the server's "postgres" database.
	admin, err := withDatabase(cfg.dsn, "postgres", "")
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(cctx, admin)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", RedactDSN(admin), err)
	}
	_ = conn.Close(ctx)
	return &dsnServer{url: admin}, nil
}

func (s *dsnServer) dsn() string                   { return s.url }
func (s *dsnServer) restart(context.Context) error { return ErrNotSupported }
func (s *dsnServer) pause(context.Context) error   { return ErrNotSupported }
func (s *dsnServer) resume(context.Context) error  { return ErrNotSupported }
func (s *dsnServer) close() error                  { return nil }
