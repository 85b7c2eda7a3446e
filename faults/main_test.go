package faults_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// TestMain checks that no test of the package leaves a goroutine behind, and
// stops the Postgres server pgtest started for this test binary.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}
