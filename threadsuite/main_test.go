package threadsuite

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}
