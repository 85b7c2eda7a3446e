package chaos

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// TestServerCheckFails shows the periodic server check failing: a session of the worker's
// application_name left idle in transaction (behind the pool's back) is a violation.
func TestServerCheckFails(t *testing.T) {
	db := pgtest.New(t)
	cfg := Config{Seed: 1, Workers: 1, Ops: 1, CheckTimeout: 300 * time.Millisecond}
	cfg.defaults()
	rs := &runState{target: Target{DSN: db.DSN, Admin: db.Admin, AppName: db.AppName}}
	wl := &Workload{Operations: []Operation{{Name: "noop", Run: func(context.Context, *sql.DB, *Op) error { return nil }}}}
	w, err := newWorker(context.Background(), 0, &cfg, wl, rs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	pc, err := pgx.ParseConfig(db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	pc.RuntimeParams["application_name"] = w.appName
	rogue := sql.OpenDB(stdlib.GetConnector(*pc))
	t.Cleanup(func() { rogue.Close() })
	ctx := context.Background()
	tx, err := rogue.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if w.checkServer(ctx, 7) {
		t.Fatalf("the server check passed with a backend of %s idle in transaction", w.appName)
	}
	if len(w.violations) != 1 || w.violations[0].Invariant != "server" || !strings.Contains(w.violations[0].Message, "idle in transaction") {
		t.Errorf("violations = %+v; want one server violation naming idle in transaction", w.violations)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	w.violations = nil
	if !w.checkServer(ctx, 8) {
		t.Errorf("the server check failed once the transaction ended: %+v", w.violations)
	}
}
