package faults_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
)

// pgxPool opens a pgxpool on a fresh items database with a PgxInjector
// installed, closed at cleanup.
func pgxPool(t *testing.T) (*pgxpool.Pool, *faults.PgxInjector) {
	t.Helper()
	db := newItemsDB(t)
	cfg, err := pgxpool.ParseConfig(db.DSN)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = db.AppName + "-pgx"
	cfg.MaxConns = 2
	inj := faults.NewPgxInjector()
	inj.Install(&cfg.ConnConfig.Config)
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("new pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, inj
}

// armedPgxPool is pgxPool with plan armed, connected first when ping is
// set (step 1 is then the first request of the code), and the context the
// code runs under (the injector's, cancelled at cleanup).
func armedPgxPool(t *testing.T, plan string, ping bool) (*pgxpool.Pool, *faults.PgxInjector, context.Context) {
	t.Helper()
	pool, inj := pgxPool(t)
	if ping {
		if err := pool.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	p, err := faults.ParsePlan(plan)
	if err != nil {
		t.Fatal(err)
	}
	if err := inj.Arm(p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := inj.Context(t.Context())
	t.Cleanup(cancel)
	return pool, inj, ctx
}

// insertTx inserts id in a transaction, as pgx.BeginFunc does.
func insertTx(ctx context.Context, pool *pgxpool.Pool, id int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", id); err != nil {
			return err
		}
		var n int
		return tx.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n)
	})
}

func TestPgxInjectorTrace(t *testing.T) {
	pool, inj := pgxPool(t)
	ctx := t.Context()
	if err := pool.Ping(ctx); err != nil { // connect outside the trace
		t.Fatal(err)
	}
	inj.Reset()
	if err := insertTx(ctx, pool, 1); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, s := range inj.Trace() {
		kinds = append(kinds, s.Kind.String())
	}
	// pgx prepares each statement once (a Parse/Describe round trip), then
	// runs it with Bind/Execute
	want := "begin prepare exec prepare query commit"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("got steps %q; want %q\n%s", got, want, inj.Trace())
	}
	tr := inj.Trace()
	if len(tr) == 6 && (tr[2].SQL != "INSERT INTO items (id) VALUES ($1)" || tr[2].Args != 1 || !tr[2].Prepared) {
		t.Errorf("got exec step %+v; want the INSERT with 1 arg, prepared", tr[2])
	}
}

func TestPgxInjectorFaults(t *testing.T) {
	tests := []struct {
		name    string
		plan    string
		check   func(t *testing.T, err error)
		present bool // the row is in the database afterwards
	}{
		{name: "serialization failure at the insert", plan: "step=3:pgerr=40001", check: wantCode("40001")},
		{name: "serialization failure at commit", plan: "step=6:pgerr=40001", check: wantCode("40001")},
		{name: "unique violation at the query", plan: "step=5:pgerr=23505", check: wantCode("23505")},
		{name: "admin shutdown at begin", plan: "step=1:pgerr=57P01", check: wantCode("57P01")},
		{name: "terminate at the insert", plan: "step=3:terminate", check: wantCode("57P01")},
		{name: "cut at commit", plan: "step=6:cut", check: wantErr},
		{name: "ambiguous commit", plan: "step=6:ambiguous", check: wantErr, present: true},
		{name: "cancel at the insert", plan: "step=3:cancel", check: func(t *testing.T, err error) {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got %v; want context.Canceled", err)
			}
		}},
		{name: "latency", plan: "step=3:latency=5ms", check: func(t *testing.T, err error) {
			if err != nil {
				t.Errorf("got %v; want success", err)
			}
		}, present: true},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, inj, ctx := armedPgxPool(t, tt.plan, true)
			id := n + 1
			err := insertTx(ctx, pool, id)
			tt.check(t, err)
			if len(inj.Fired()) != 1 {
				t.Fatalf("got firings %v; want one\n%s", inj.Fired(), inj.Trace())
			}
			var present bool
			if err := pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM items WHERE id = $1)", id).Scan(&present); err != nil {
				t.Fatal(err)
			}
			if present != tt.present {
				t.Errorf("got row present %v; want %v", present, tt.present)
			}
			// pgxpool gives a broken connection back asynchronously: poll
			testkit.EventuallyNil(t, func() error {
				if n := pool.Stat().AcquiredConns(); n != 0 {
					return fmt.Errorf("%d acquired connection(s); want 0", n)
				}
				return nil
			}, "the pool to take every connection back")
		})
	}
}

// TestPgxInjectorCancelForeignContext shows how a cancel fault tells a
// request made under the caller's context from one made under another: pgx
// gives up on the first at once; the second goes on, and the firing's
// Unheeded says so. A connect, which pgxpool makes under its own context,
// is not blamed.
func TestPgxInjectorCancelForeignContext(t *testing.T) {
	tests := []struct {
		name    string
		plan    string
		ping    bool                                         // connect before arming: step 1 is the begin
		insert  func(caller context.Context) context.Context // the context the insert runs under
		foreign bool                                         // want Unheeded wrapping ErrForeignContext
	}{
		{"caller-context", "step=3:cancel", true, func(caller context.Context) context.Context { return caller }, false},
		{"background-at-the-insert", "step=3:cancel", true, func(context.Context) context.Context { return context.Background() }, true},
		{"without-cancel-at-the-insert", "step=3:cancel", true, context.WithoutCancel, true},
		{"connect", "step=1:cancel", false, func(caller context.Context) context.Context { return caller }, false},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, inj, ctx := armedPgxPool(t, tt.plan, tt.ping)
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(tt.insert(ctx), "INSERT INTO items (id) VALUES ($1)", n+1)
				return err
			})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got %v; want context.Canceled (the caller's context was cancelled)", err)
			}
			fired := inj.Fired()
			if len(fired) != 1 {
				t.Fatalf("got firings %v; want one\n%s", fired, inj.Trace())
			}
			u := fired[0].Unheeded
			switch {
			case tt.foreign && !errors.Is(u, faults.ErrForeignContext):
				t.Errorf("got Unheeded %v; want one wrapping faults.ErrForeignContext", u)
			case tt.foreign && !strings.Contains(u.Error(), "INSERT INTO items"):
				t.Errorf("got Unheeded %q; want it to name the request", u)
			case !tt.foreign && u != nil:
				t.Errorf("got Unheeded %v; want nil (the request heeded the caller's cancellation)", u)
			}
		})
	}
}

// TestPgxInjectedErrorAbortsTx shows the server's own view of an injected
// error: the transaction is aborted, the next statement gets 25P02 and
// COMMIT answers ROLLBACK (pgx.ErrTxCommitRollback).
func TestPgxInjectedErrorAbortsTx(t *testing.T) {
	pool, inj := pgxPool(t)
	ctx := t.Context()
	if err := inj.Arm(faults.Plan{Rules: []faults.Rule{{Match: faults.StepExec, Pattern: "INSERT", Nth: 1,
		Fault: faults.Fault{Kind: faults.KindPgErr, Code: "40001"}}}}); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", 1)
	wantCode("40001")(t, err)
	_, err = tx.Exec(ctx, "SELECT 1")
	wantCode(faults.CodeInFailedTransaction)(t, err)
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Errorf("commit: got %v; want pgx.ErrTxCommitRollback", err)
	}
}

func TestPgxInjectorRejectsDriverFaults(t *testing.T) {
	inj := faults.NewPgxInjector()
	p, err := faults.ParsePlan("step=1:badconn")
	if err != nil {
		t.Fatal(err)
	}
	if err := inj.Arm(p); !errors.Is(err, faults.ErrInvalidFault) {
		t.Errorf("got %v; want faults.ErrInvalidFault", err)
	}
}

func wantCode(code string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code {
			t.Errorf("got %v; want a *pgconn.PgError with SQLSTATE %s from the server", err, code)
		}
	}
}

func wantErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Error("got nil error; want one")
	}
}
