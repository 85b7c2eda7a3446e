package faults_test

import (
	"database/sql"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
)

// TestWirePQAmbiguousCommit: the Wire serves a driver that dials for itself
// (lib/pq, through its Connector's Dialer) as it serves pgx: a cut after the
// COMMIT was sent leaves the row committed while the client gets an error;
// a cut before it leaves nothing.
func TestWirePQAmbiguousCommit(t *testing.T) {
	tests := []struct {
		name    string
		action  faults.WireAction
		wantRow bool
	}{
		{name: "cut-after-commit", action: faults.WireCutAfter, wantRow: true},
		{name: "cut-before-commit", action: faults.WireCutBefore, wantRow: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newItemsDB(t)
			u, err := url.Parse(db.DSN)
			if err != nil {
				t.Fatal(err)
			}
			app := db.AppName + "-pq"
			q := u.Query()
			q.Set("application_name", app)
			q.Set("sslmode", "disable")
			u.RawQuery = q.Encode()
			c, err := pq.NewConnector(u.String())
			if err != nil {
				t.Fatal(err)
			}
			w := faults.NewWire()
			c.Dialer(w.Dialer())
			pool := sql.OpenDB(c)
			t.Cleanup(func() { _ = pool.Close() })
			pool.SetMaxOpenConns(1)

			if err := w.Arm(faults.WireRule{Message: faults.WireCommit, N: 1, Action: tt.action}); err != nil {
				t.Fatal(err)
			}
			tx, err := pool.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(t.Context(), `INSERT INTO items VALUES ($1)`, 42); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err == nil {
				t.Fatal("Commit: got nil; want the error of a dead connection")
			}
			if f := w.Fired(); len(f) != 1 {
				t.Errorf("Fired() = %+v; want one firing on the COMMIT", f)
			}
			if err := faults.NewServer(db.Admin).WaitGone(t.Context(), app); err != nil {
				t.Fatal(err)
			}
			got := itemIDs(t, db.DB)
			if gotRow := slices.Equal(got, []int{42}); gotRow != tt.wantRow {
				t.Errorf("row committed: got %v (rows %v); want %v", gotRow, got, tt.wantRow)
			}
		})
	}
}

// pqWatchers counts lib/pq's per-call context watchers still running.
func pqWatchers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "lib/pq.(*conn).watchCancel")
}

// TestInjectorPQDriverCleansUp is the real-driver twin of
// TestInjectedFaultsStillEndTheDriversTransaction: lib/pq starts a goroutine
// per transaction that watches its context until the transaction ends in
// the driver. After any injected fault — with the context still live — that
// goroutine is gone, as after a real failure.
func TestInjectorPQDriverCleansUp(t *testing.T) {
	tests := []struct {
		name string
		plan string
	}{
		{name: "badconn-at-exec", plan: "match=exec:badconn"},
		{name: "fatal-pgerr-at-exec", plan: "match=exec:pgerr=57P01"},
		{name: "error-at-exec", plan: "match=exec:error"},
		{name: "error-at-commit", plan: "match=commit:error"},
		{name: "badconn-at-commit", plan: "match=commit:badconn"},
	}
	db := newItemsDB(t)
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pq.NewConnector(db.DSN)
			if err != nil {
				t.Fatal(err)
			}
			inj := faults.NewInjector()
			pool := sql.OpenDB(inj.WrapConnector(c))
			t.Cleanup(func() { _ = pool.Close() })
			plan, err := faults.ParsePlan(tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context() // live until the test ends, after the check
			before := pqWatchers()
			inj.Arm(plan)
			err = func() error {
				tx, err := pool.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				if _, err := tx.ExecContext(ctx, `INSERT INTO items VALUES ($1)`, 100+n); err != nil {
					return err
				}
				return tx.Commit()
			}()
			if err == nil || len(inj.Fired()) == 0 {
				t.Fatalf("got %v, fired %v; want the injected fault", err, inj.Fired())
			}
			testkit.EventuallyNil(t, func() error {
				if got := pqWatchers(); got > before {
					return fmt.Errorf("lib/pq context watchers: got %d; want %d (the driver's transaction never ended); trace:\n%s", got, before, inj.Trace())
				}
				return nil
			}, "lib/pq's context watchers to end")
		})
	}
}
