package pgtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// shared holds the per-binary servers, one per provider configuration, started on first
// use and stopped by [Main] (or never, if the test binary does not use Main).
var shared struct {
	mu      sync.Mutex
	servers map[string]*sharedServer
}

type sharedServer struct {
	once sync.Once
	srv  *Server
	err  error
}

func (c config) key() string {
	return strings.Join([]string{c.provider, c.dsn, c.image}, "\x00")
}

func sharedFor(cfg config, opts []Option) (*Server, error) {
	shared.mu.Lock()
	if shared.servers == nil {
		shared.servers = map[string]*sharedServer{}
	}
	e := shared.servers[cfg.key()]
	if e == nil {
		e = &sharedServer{}
		shared.servers[cfg.key()] = e
	}
	shared.mu.Unlock()
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		e.srv, e.err = Start(ctx, slices.Concat(opts, []Option{func(c *config) { c.perBinary = true }})...)
	})
	return e.srv, e.err
}

// New returns a fresh database for this test on the test binary's server (started on first
// use, stopped by [Main]); its cleanup closes the pools and drops the database. When no
// Postgres can be had it skips the test with the exact reason, or fails it when the
// environment demands Postgres (CI=true or SESSIONSAFE_PG_REQUIRED=1).
func New(t testing.TB, opts ...Option) *Database {
	t.Helper()
	cfg := newConfig(opts)
	srv, err := sharedFor(cfg, opts)
	if err != nil {
		if cfg.required {
			t.Fatalf("pgtest: postgres is required here (CI=true or %s=1) but none could be had: %v", EnvRequired, err)
		}
		image := cfg.image
		if image == "" {
			image = LocalImage + " (make pg-image) or " + DefaultImage
		}
		t.Skipf("pgtest: skipped, no postgres: %v (set %s, start Docker with the image %s, or install the PostgreSQL server binaries)",
			err, EnvDSN, image)
	}
	ctx := t.Context()
	began := time.Now()
	db, err := srv.NewDatabase(ctx, slices.Concat(opts, []Option{func(c *config) { c.hint = t.Name() }})...)
	if err != nil {
		t.Fatalf("pgtest: new database on %s postgres: %v", srv.Provider(), err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			if errors.Is(err, ErrLeakedConnections) {
				t.Logf("pgtest: %v", err)
				return
			}
			t.Errorf("pgtest: %v", err)
		}
	})
	t.Logf("pgtest: database %s (application_name %s) on %s postgres %s (server ready in %s), created in %s",
		db.Name, db.AppName, srv.Provider(), srv.Version(), srv.ReadyIn().Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))
	return db
}

// Main wraps a TestMain's m so that, after the tests ran, every server this binary started
// through [New] is stopped (pools closed, container terminated or cluster removed):
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
func Main(m interface{ Run() int }) interface{ Run() int } { return mainRunner{m} }

type mainRunner struct{ m interface{ Run() int } }

// Run runs the tests, then stops the servers; a failure to stop one fails the run.
func (r mainRunner) Run() int {
	code := r.m.Run()
	if err := closeShared(); err != nil {
		fmt.Printf("pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// closeShared stops every per-binary server.
func closeShared() error {
	shared.mu.Lock()
	servers := shared.servers
	shared.servers = nil
	shared.mu.Unlock()
	keys := make([]string, 0, len(servers))
	for k := range servers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if s := servers[k].srv; s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
