// Command bankcheck is the sessionsafe command line on the bank example: every subcommand,
// flag, report and exit code of sessionsafe, on the bank's catalogs (-catalog bank-pgx: its pgx store).
//
//	go run ./examples/bank/cmd/bankcheck matrix -backend sqlmock
package main

// README:begin
import (
	"os"

	"github.com/sessionsafe/sessionsafe/cli"
	"github.com/sessionsafe/sessionsafe/examples/bank"
)

func main() { os.Exit(cli.Main(bank.Catalog(), bank.PgxCatalog())) }

// README:end
