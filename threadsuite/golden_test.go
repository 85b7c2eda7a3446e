package threadsuite

import (
	"flag"
	"testing"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

var update = flag.Bool("update", false, "rewrite the golden traces in testdata from a clean run on PostgreSQL")

// TestGolden records each catalog operation on PostgreSQL and compares its
// trace with testdata/<operation>.trace: a changed query, a new step or
// different result data fails here with a diff. Refresh with -update.
func TestGolden(t *testing.T) {
	db := pgtest.New(t, pgtest.WithMigration("handlers", handlers.Migrate))
	scenarios.GoldenTests(t, "testdata", *update, scenarios.Config{Backend: scenarios.Postgres, DSN: db.DSN, DB: db.DB}, Catalog()...)
}
