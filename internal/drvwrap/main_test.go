package drvwrap_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// TestMain checks no test leaves a goroutine behind and stops the Postgres
// server pgtest started for this binary.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}
