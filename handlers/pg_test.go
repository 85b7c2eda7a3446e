package handlers

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/leakcheck"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// pgFixture is a Service on a fresh database of a real Postgres, through a
// driver wrapper that can fail one chosen call.
type pgFixture struct {
	tb  testing.TB // whose deadline bounds the checks' polling
	pg  *pgtest.Database
	db  *sql.DB // the pool under test: pgx stdlib, wrapped, application_name pg.AppName
	svc *Service

	mu    sync.Mutex
	fault func(ctx context.Context, c *drvwrap.Call) error // nil: none armed
}

// pgUser owns the threads the Postgres tests seed.
const pgUser = "alice"

// migration is the template every handlers test database is cloned from.
var migration = pgtest.WithMigration("handlers-v1", Migrate)

func newPG(tb testing.TB, opts ...Option) *pgFixture {
	tb.Helper()
	pg := pgtest.New(tb, migration)
	cfg, err := pgx.ParseConfig(pg.DSN)
	if err != nil {
		tb.Fatalf("parse DSN: %v", err)
	}
	f := &pgFixture{tb: tb, pg: pg}
	f.db = sql.OpenDB(drvwrap.WrapConnector(stdlib.GetConnector(*cfg), drvwrap.Hooks{Before: f.before}))
	tb.Cleanup(func() { _ = f.db.Close() })
	f.svc = New(f.db, opts...)
	return f
}

func (f *pgFixture) before(ctx context.Context, c *drvwrap.Call) error {
	f.mu.Lock()
	fault := f.fault
	f.mu.Unlock()
	if fault == nil {
		return nil
	}
	return fault(ctx, c)
}

// failOnce arms a fault for the first call of kind op whose SQL starts as
// sqlText does (any SQL when empty): it runs act and returns its error.
func (f *pgFixture) failOnce(op drvwrap.Op, sqlText string, act func(ctx context.Context) error) {
	var once sync.Once
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = func(ctx context.Context, c *drvwrap.Call) error {
		if c.Op != op || (sqlText != "" && !strings.HasPrefix(c.SQL, sqlText)) {
			return nil
		}
		var err error
		hit := false
		once.Do(func() { hit = true; err = act(ctx) })
		if !hit {
			return nil
		}
		return err
	}
}

// hang blocks until the statement's context ends: a query that times out.
func hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// hangingThread seeds a thread of user pgUser with n messages, makes the
// next query with sqlText hang until its context ends, and returns the
// thread and a context that ends 200ms from now: a statement that times out.
func (f *pgFixture) hangingThread(tb testing.TB, n int, sqlText string) (Thread, context.Context) {
	tb.Helper()
	th := f.seedThread(tb, pgUser, n)
	f.failOnce(drvwrap.OpQuery, sqlText, hang)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	tb.Cleanup(cancel)
	return th, ctx
}

// serverClean checks, with leakcheck, until the test's polling deadline
// (testkit.Deadline: a loaded machine may take a while to release a
// connection, and a fixed window is one it could outlast), that no
// connection of the pool under test is in use and no backend of this test's
// application_name is idle in transaction (aborted or not), active or
// holding a lock; it returns what was still wrong at the deadline.
func (f *pgFixture) serverClean() error {
	return leakcheck.Find(context.Background(), leakcheck.WithDB(f.db),
		leakcheck.WithServer(f.pg.Admin, f.pg.AppName), leakcheck.WithTimeout(time.Until(testkit.Deadline(f.tb))))
}

func (f *pgFixture) mustClean(tb testing.TB) {
	tb.Helper()
	if err := f.serverClean(); err != nil {
		tb.Fatal(err)
	}
}

// seedThread creates a thread of user with n user messages.
func (f *pgFixture) seedThread(tb testing.TB, user string, n int) Thread {
	tb.Helper()
	ctx := context.Background()
	th, err := f.svc.CreateThread(ctx, user, CreateThreadInput{Title: "seed", Metadata: map[string]any{"seed": true}})
	if err != nil {
		tb.Fatalf("seed thread: %v", err)
	}
	for i := range n {
		if _, err := f.svc.SendMessage(ctx, user, th.ID, SendMessageInput{Content: fmt.Sprintf("message %d about the Lisbon trip", i+1)}); err != nil {
			tb.Fatalf("seed message: %v", err)
		}
	}
	return th
}
