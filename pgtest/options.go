package pgtest

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// Provider names, as accepted by SESSIONSAFE_PG_PROVIDER and [WithProvider].
const (
	ProviderAuto   = "auto"
	ProviderDSN    = "dsn"
	ProviderDocker = "docker"
	ProviderLocal  = "local"
	ProviderNone   = "none" // no real Postgres: tests that need one skip (or fail where it is required)
)

// Environment variables read by pgtest.
const (
	EnvProvider    = "SESSIONSAFE_PG_PROVIDER"     // auto (default), dsn, docker or local
	EnvDSN         = "SESSIONSAFE_PG_DSN"          // the server the dsn provider uses
	EnvImage       = "SESSIONSAFE_PG_IMAGE"        // the image the docker provider runs
	EnvRequired    = "SESSIONSAFE_PG_REQUIRED"     // "1" or "true": no Postgres is a failure, not a skip
	EnvReport      = "SESSIONSAFE_PG_REPORT"       // a file to which each server start appends one line
	EnvInitdbCache = "SESSIONSAFE_PG_INITDB_CACHE" // "0" or "off": the local provider runs initdb every time
)

// Images the docker provider runs when none is chosen ([WithImage], SESSIONSAFE_PG_IMAGE):
// LocalImage, the image make pg-image builds offline, when Docker has it, else DefaultImage,
// the official image.
const (
	LocalImage   = "sessionsafe/postgres:local"
	DefaultImage = "postgres:15-alpine"
)

// Option configures [New], [Start] and [Server.NewDatabase].
type Option func(*config)

type migration struct {
	name string
	fn   func(ctx context.Context, db *sql.DB) error
}

type config struct {
	provider    string
	dsn         string
	image       string
	required    bool
	report      string
	logger      *slog.Logger
	migration   *migration
	hint        string // a readable part for database names (the test name)
	perBinary   bool   // started by New as the test binary's server
	owner       string // the owner recorded on a container (tests plant a gone one); "" is this process
	initdbCache bool   // local: start from a cached freshly-initialised cluster
}

// defaults reads the environment once; options override it.
func defaults() config {
	provider := strings.ToLower(strings.TrimSpace(os.Getenv(EnvProvider)))
	if provider == "" {
		provider = ProviderAuto
	}
	// "" lets the docker provider choose: LocalImage when present, else DefaultImage.
	image := strings.TrimSpace(os.Getenv(EnvImage))
	return config{
		provider:    provider,
		dsn:         os.Getenv(EnvDSN),
		image:       image,
		required:    Required(),
		report:      os.Getenv(EnvReport),
		initdbCache: !slices.Contains([]string{"0", "off", "false", "no"}, strings.ToLower(os.Getenv(EnvInitdbCache))),
		logger:      slog.Default(),
	}
}

func newConfig(opts []Option) config {
	c := defaults()
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Required reports whether the environment demands Postgres (CI=true or
// SESSIONSAFE_PG_REQUIRED=1): then a missing Postgres fails a test instead of skipping it.
func Required() bool {
	truthy := func(v string) bool {
		v = strings.ToLower(strings.TrimSpace(v))
		return v == "1" || v == "true" || v == "yes"
	}
	return truthy(os.Getenv(EnvRequired)) || truthy(os.Getenv("CI"))
}

// WithMigration makes the database a clone of a template migrated once by fn per name and
// server. The name identifies the schema: change it when fn changes. A failed migration is
// reported to every database asked for on that server with that name, and not run again.
func WithMigration(name string, fn func(ctx context.Context, db *sql.DB) error) Option {
	return func(c *config) { c.migration = &migration{name: name, fn: fn} }
}

// WithProvider forces a provider ("auto", "dsn", "docker" or "local") instead of
// SESSIONSAFE_PG_PROVIDER. Given to [New], it starts (once per binary) a server of its own
// for that provider.
func WithProvider(name string) Option {
	return func(c *config) { c.provider = strings.ToLower(name) }
}

// WithDSN sets the server the dsn provider uses instead of SESSIONSAFE_PG_DSN.
func WithDSN(dsn string) Option { return func(c *config) { c.dsn = dsn } }

// WithImage sets the image the docker provider runs instead of SESSIONSAFE_PG_IMAGE (or,
// when neither is set, [LocalImage] if present, else [DefaultImage]).
func WithImage(image string) Option { return func(c *config) { c.image = image } }

// WithLogger sets where [Start] and [Server] log (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }
