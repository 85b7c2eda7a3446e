package cli

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"

	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// startPostgres provisions the Postgres server the flags ask for. Close it when done: it
// removes the container or the cluster and its temporary directory.
func startPostgres(ctx context.Context, o *options, log io.Writer) (*pgtest.Server, error) {
	// testcontainers prints a Docker banner and its progress through a logger of its own,
	// process-wide: only -v shows them.
	var tcLog tclog.Logger = tclog.NewNoopLogger()
	if o.verbose {
		tcLog = stdlog.New(log, "", stdlog.LstdFlags)
	}
	tclog.SetDefault(tcLog)
	opts := []pgtest.Option{pgtest.WithProvider(o.provider), pgtest.WithLogger(slog.New(slog.NewTextHandler(log, nil)))}
	if o.dsn != "" {
		opts = append(opts, pgtest.WithDSN(o.dsn))
	}
	srv, err := pgtest.Start(ctx, opts...)
	if err != nil {
		return nil, &setupError{fmt.Errorf("start postgres (-provider %s): %w", o.provider, err)}
	}
	return srv, nil
}

// newDatabase returns a fresh database migrated for the catalog.
func newDatabase(ctx context.Context, srv *pgtest.Server, cat *Catalog) (*pgtest.Database, error) {
	db, err := srv.NewDatabase(ctx, pgtest.WithMigration(cat.Migration, cat.Migrate))
	if err != nil {
		return nil, &setupError{fmt.Errorf("create database: %w", err)}
	}
	return db, nil
}
