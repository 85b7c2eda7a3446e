// Command sessionsafe runs the session-safety harness from the command line on the thread
// handlers (catalog "threads", the default) and the bank example (-catalog bank, and its pgx
// store alone: -catalog bank-pgx): see
// package cli for its subcommands, flags and exit codes.
package main

import (
	"database/sql"
	"net/http"
	"os"

	"github.com/sessionsafe/sessionsafe/cli"
	"github.com/sessionsafe/sessionsafe/examples/bank"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/threadsuite"
)

func main() {
	os.Exit(cli.Main(cli.Catalog{
		Name:       "threads",
		Operations: threadsuite.Catalog(),
		Golden:     threadsuite.GoldenFS(),
		Migration:  "sessionsafe-handlers-v1",
		Migrate:    handlers.Migrate,
		Handler:    func(db *sql.DB) http.Handler { return handlers.New(db).Handler() },
		Chaos:      threadsuite.ChaosWorkload(),
	}, bank.Catalog(), bank.PgxCatalog()))
}
