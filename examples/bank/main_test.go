package bank

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

func TestMain(m *testing.M) {
	// A pool the planted pgx stores leaked a connection from never closes:
	// pgxpool.Pool.Close waits for every acquired connection, and the
	// runner leaves it waiting (see scenarios.Operation.RunPgx).
	goleak.VerifyTestMain(pgtest.Main(m), goleak.IgnoreAnyFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).Close"))
}
