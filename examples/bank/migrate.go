package bank

import (
	"context"
	"database/sql"
	_ "embed" // the schema
	"fmt"
)

//go:embed schema.sql
var schemaSQL string

// migrateLockKey serializes concurrent migrations of one database ("bank" in
// ASCII).
const migrateLockKey = 0x62616e6b

// Migrate applies the embedded schema to db. It is idempotent and safe to
// run concurrently against one database (it holds an advisory lock).
func Migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("bank: migrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLockKey)); err != nil {
		return fmt.Errorf("bank: migrate: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, schemaSQL); err != nil {
		return fmt.Errorf("bank: migrate: apply schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bank: migrate: commit: %w", err)
	}
	return nil
}
