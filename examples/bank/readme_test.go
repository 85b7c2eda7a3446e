package bank

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// README:begin
// TestTransferLeaksNothing puts Store.Transfer through every fault at every
// step on a real PostgreSQL: each case must surface its error (or be
// retried), leave the balances all-or-nothing, and leak no connection,
// transaction, lock or goroutine.
func TestTransferLeaksNothing(t *testing.T) {
	db := pgtest.New(t, pgtest.WithMigration("bank-v1", Migrate)) // a fresh database
	type accounts struct{ from, to int64 }
	scenarios.RunTests(t, scenarios.Config{
		Backend: scenarios.Postgres,
		DSN:     db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName,
	}, scenarios.Operation{
		Name: "Transfer",
		Setup: func(ctx context.Context, plain *sql.DB) (scenarios.Fixture, error) {
			s := NewStore(plain, nil) // fresh rows per case, on a plain pool
			from, err := s.CreateAccount(ctx, "alice", 100)
			if err != nil {
				return nil, err
			}
			to, err := s.CreateAccount(ctx, "bob", 0)
			return accounts{from.ID, to.ID}, err
		},
		Run: func(ctx context.Context, pool *sql.DB, fx scenarios.Fixture) error {
			a := fx.(accounts) // pool is instrumented: every call on it can fail
			_, err := NewStore(pool, nil).Transfer(ctx, a.from, a.to, 30)
			return err
		},
		State: func(ctx context.Context, plain *sql.DB, fx scenarios.Fixture) (string, error) {
			a := fx.(accounts)
			var from, to int64
			err := plain.QueryRowContext(ctx, `SELECT
				(SELECT balance FROM accounts WHERE id = $1),
				(SELECT balance FROM accounts WHERE id = $2)`, a.from, a.to).Scan(&from, &to)
			return fmt.Sprintf("from=%d to=%d", from, to), err
		},
	})
}

// README:end

// TestREADMEShowsThisFile keeps the README's examples the code of this
// directory, which compiles (and, for the test above, runs) with the
// package: the lines between README:begin and README:end of each file appear
// verbatim in a Go block of the README.
func TestREADMEShowsThisFile(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, file, section string }{
		{"matrix-test", "readme_test.go", "On your own code"},
		{"command-line", "cmd/bankcheck/main.go", "The command line on your own code"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			_, after, _ := strings.Cut(string(src), "// README:begin\n")
			example, _, _ := strings.Cut(after, "\n// README:end")
			if !strings.Contains(string(readme), "```go\n"+example+"```") {
				t.Errorf("README.md does not show examples/bank/%s's example verbatim; copy the lines between README:begin and README:end into its %q section:\n%s", tt.file, tt.section, example)
			}
		})
	}
}
