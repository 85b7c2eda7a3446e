package cli

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/threadsuite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// threadCatalog is the thread handlers' catalog, as cmd/sessionsafe registers it.
func threadCatalog() Catalog {
	return Catalog{
		Name:       "threads",
		Operations: threadsuite.Catalog(),
		Golden:     threadsuite.GoldenFS(),
		Migration:  "sessionsafe-handlers-v1",
		Migrate:    handlers.Migrate,
		Handler:    func(db *sql.DB) http.Handler { return handlers.New(db).Handler() },
		Chaos:      threadsuite.ChaosWorkload(),
	}
}

// run runs the program under test, sessionsafe with the thread catalog alone.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return program{name: "sessionsafe", catalogs: []Catalog{threadCatalog()}}.run(ctx, args, stdout, stderr, getenv)
}
