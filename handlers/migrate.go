package handlers

import (
	"context"
	"database/sql"
	_ "embed" // the schema
	"fmt"
)

//go:embed schema.sql
var schemaSQL string

// migrateLockKey serializes concurrent migrations of one database (an
// arbitrary constant: "sessionsafe" in ASCII, truncated).
const migrateLockKey = 0x73657373696f6e

// Migrate applies the embedded schema. It is idempotent and safe to run
// concurrently against the same database (it holds an advisory lock).
func Migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLockKey)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, schemaSQL); err != nil {
		return fmt.Errorf("migrate: apply schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
