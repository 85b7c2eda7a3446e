package bank

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/cli"
)

// TestCommandLine runs the bank's catalog through the command line, as cmd/bankcheck does:
// the whole matrix on sqlmock, and on PostgreSQL the first steps of a database/sql and a pgx operation
// (TestMatrix and TestMatrixPgx run them all), and a seeded chaos run on each backend
// (TestChaos runs longer ones), and one of the pgx store's catalog (PgxCatalog) on
// PostgreSQL, each with no violation and exit code 0.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"sqlmock", []string{"matrix", "-backend", "sqlmock"}},
		{"postgres", []string{"matrix", "-backend", "postgres", "-run", "^(Transfer|PgxGetAccount)/step-[0-3]-"}},
		{"chaos-sqlmock", []string{"chaos", "-backend", "sqlmock", "-ops", "200", "-workers", "2", "-seed", "7"}},
		{"chaos-postgres", []string{"chaos", "-backend", "postgres", "-ops", "100", "-workers", "2", "-seed", "7"}},
		{"chaos-pgx-postgres", []string{"chaos", "-catalog", "bank-pgx", "-backend", "postgres", "-ops", "100", "-workers", "2", "-seed", "7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "postgres") && testing.Short() {
				t.Skip("starts Postgres")
			}
			var out, errOut bytes.Buffer
			code := cli.Run(t.Context(), append([]string{"bankcheck"}, tt.args...), &out, &errOut, Catalog(), PgxCatalog())
			if code != 0 || !strings.Contains(out.String(), "PASS: no violation") {
				t.Fatalf("bankcheck %s: exit %d; want 0 and PASS\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), code, out.String(), errOut.String())
			}
			t.Log(lastLines(out.String(), 3))
		})
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
