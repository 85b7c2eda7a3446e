package bank

import (
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// TestCancelBlocked puts every bank operation, through pgx stdlib, through
// the opt-in cancel-blocked fault: at each statement that names a table,
// the caller's context is cancelled while the statement waits on a lock
// another session holds, and the call must return promptly with it.
func TestCancelBlocked(t *testing.T) {
	cfg := pgConfig(t, "pgx")
	cfg.CancelBlocked = true
	cfg.Only = func(c scenarios.Case) bool { return c.Fault.Kind == faults.KindCancelBlocked }
	scenarios.RunTests(t, cfg, catalog(theStore)...)
}
