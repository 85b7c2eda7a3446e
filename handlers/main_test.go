package handlers

import (
	"testing"

	"github.com/sessionsafe/sessionsafe/pgtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}
