package threadsuite

import (
	"context"
	"database/sql"
	"testing"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// TestMigrateMatrix puts handlers.Migrate through every applicable fault at
// every step on real PostgreSQL: a migration is a transaction like any other
// (an advisory lock, the schema, a commit), and one that fails must roll back,
// surface its error, honour its caller's context and leave nothing behind.
// The schema is idempotent, so each case migrates the already migrated test
// database; the cases run one at a time, since every migration takes the same
// advisory lock.
func TestMigrateMatrix(t *testing.T) {
	op := scenarios.Operation{
		Name:  "Migrate",
		Setup: func(context.Context, *sql.DB) (scenarios.Fixture, error) { return nil, nil },
		Run: func(ctx context.Context, db *sql.DB, _ scenarios.Fixture) error {
			return handlers.Migrate(ctx, db)
		},
	}
	scenarios.RunTests(t, pgConfig(t), op)
}
