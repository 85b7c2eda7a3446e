package pgtest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(closeLocal{m}))
}

// local is one local-binaries server shared by the tests that do not restart or pause it.
var local struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
}

// closeLocal runs the tests, then stops the shared local server.
type closeLocal struct{ m *testing.M }

func (c closeLocal) Run() int {
	code := c.m.Run()
	if local.srv != nil {
		if err := local.srv.Close(); err != nil {
			fmt.Printf("close the shared local server: %v\n", err)
			return 1
		}
	}
	return code
}

// sharedLocal returns the shared local server, starting it on first use; it skips when the
// local binaries cannot serve here, unless the environment demands Postgres.
func sharedLocal(t testing.TB) *pgtest.Server {
	t.Helper()
	local.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		local.srv, local.err = pgtest.Start(ctx, pgtest.WithProvider(pgtest.ProviderLocal))
	})
	if local.err != nil {
		if pgtest.Required() {
			t.Fatalf("start the local provider (Postgres is required here): %v", local.err)
		}
		t.Skipf("local provider cannot serve here: %v", local.err)
	}
	return local.srv
}
