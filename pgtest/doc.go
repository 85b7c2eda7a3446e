// Package pgtest gives tests and programs a real PostgreSQL wherever the code runs.
//
// A [Server] is provisioned once per test binary (or once per program run) by the first
// provider that can serve, in this order, each also selectable with SESSIONSAFE_PG_PROVIDER:
//
//  1. "dsn": an existing server named by SESSIONSAFE_PG_DSN (a URL DSN whose user may
//     create and drop databases);
//  2. "docker": a container started through testcontainers-go's postgres module, image
//     SESSIONSAFE_PG_IMAGE, else "sessionsafe/postgres:local" (built offline by make
//     pg-image) when Docker has it, else "postgres:15-alpine"; the testcontainers reaper (Ryuk)
//     is turned off by setting TESTCONTAINERS_RYUK_DISABLED=true in the process unless the
//     variable is already set, and every container is terminated by [Server.Close];
//  3. "local": the PostgreSQL server binaries of this machine (PATH, then pg_config --bindir,
//     then /usr/lib/postgresql/*/bin): a throwaway cluster in a temporary directory on a
//     loopback port with fsync off, run as the "postgres" user when the process is root;
//     initdb runs once per set of binaries: later clusters start from a copy of its result
//     cached in the user cache directory (SESSIONSAFE_PG_INITDB_CACHE=0 turns that off);
//  4. none (or SESSIONSAFE_PG_PROVIDER=none): [New] skips the test with the exact reason of
//     every provider, or fails it when the environment demands Postgres (CI=true or
//     SESSIONSAFE_PG_REQUIRED=1).
//
// Every test gets its own [Database], cloned with CREATE DATABASE ... TEMPLATE from a
// template that [WithMigration] migrated once per migration name and server (guarded by an
// advisory lock, so parallel tests and parallel packages sharing one DSN server build it
// once). A template on a long-lived DSN server is reused as long as the migration name is
// the same: put a version in the name when the migration changes. Each Database's
// connections carry an application_name unique to it, so server-side checks find exactly
// its backends.
//
// A test binary killed from outside cannot clean up: each cluster directory and container
// records the process that owns it, and the next start removes those whose owner is gone.
//
// Every server start is logged with the provider and how long it took to be ready; when
// SESSIONSAFE_PG_REPORT names a file, one such line per start is also appended there
// (make test prints it, so CI output shows which provider served each package).
package pgtest
