package chaos

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// faultAt arms a fresh injector firing at every eligible step and returns the fault it draws
// at op with seed, and the error it returns there.
func faultAt(tb testing.TB, seed uint64, op drvwrap.Op) (string, error) {
	tb.Helper()
	in := &injector{rate: 1}
	in.arm(rand.New(rand.NewPCG(seed, saltFaults)), func() {})
	err := in.hooks().Before(context.Background(), &drvwrap.Call{Op: op, ConnID: 1})
	fired, _ := in.disarm()
	if len(fired) != 1 {
		tb.Fatalf("seed %d at %v: fired %v; want one fault", seed, op, fired)
	}
	return fired[0], err
}

// TestInjectorSpeaksFaults: every fault the rate injector draws is named as a faults.Fault
// prints and carries the faults package's error values.
func TestInjectorSpeaksFaults(t *testing.T) {
	seen := map[faults.Kind]bool{}
	for seed := range uint64(200) {
		name, err := faultAt(t, seed, drvwrap.OpExec)
		var pe *pgconn.PgError
		switch {
		case name == "error at exec":
			seen[faults.KindError] = true
			if !errors.Is(err, faults.ErrInjected) {
				t.Errorf("seed %d: error fault %v; want it to wrap faults.ErrInjected", seed, err)
			}
		case errors.As(err, &pe):
			seen[faults.KindPgErr] = true
			want := faults.Fault{Kind: faults.KindPgErr, Code: pe.Code}.String() + " at exec"
			if name != want || pe.Message != faults.PgError(pe.Code).Message {
				t.Errorf("seed %d: fired %q with %v; want %q with faults.PgError's text", seed, name, err, want)
			}
		case name == "badconn at exec":
			seen[faults.KindBadConn] = true
			if !errors.Is(err, driver.ErrBadConn) {
				t.Errorf("seed %d: badconn fault %v; want driver.ErrBadConn", seed, err)
			}
		case name == "cancel at exec":
			seen[faults.KindCancel] = true
		default:
			if _, perr := faults.ParsePlan("step=1:" + name[:len(name)-len(" at exec")]); perr != nil || err != nil {
				t.Errorf("seed %d: fired %q (%v); want a fault a plan can name", seed, name, err)
			}
			seen[faults.KindLatency] = true
		}
	}
	if len(seen) != 5 {
		t.Errorf("kinds drawn in 200 seeds: %v; want error, pgerr, badconn, cancel and latency", seen)
	}
}

// TestCommitFaultEndsServerTransaction: whichever fault the injector draws at a commit (a
// pgerr the server never saw, or an ambiguous cut after it committed), the connection is
// discarded and no session of the pool is left inside a transaction on the server. A fault
// that returned an error at the commit but kept the connection would pool a session idle in
// transaction: the planted variant (lostCommit stripped of driver.ErrBadConn) shows the check
// failing.
func TestCommitFaultEndsServerTransaction(t *testing.T) {
	tests := []struct {
		name    string
		seed    uint64 // drawn so that the fault at the commit is the one named
		fault   string
		planted bool // the commit error does not break the connection
	}{
		{"pgerr", 0, "", false},
		{"ambiguous", 0, "ambiguous at commit", false},
		{"planted-kept-conn", 0, "", true},
	}
	for i := range tests {
		tt := &tests[i]
		wantAmbig, found := tt.fault != "", false
		for seed := range uint64(100) {
			if name, _ := faultAt(t, seed, drvwrap.OpCommit); (name == "ambiguous at commit") == wantAmbig {
				tt.seed, tt.fault, found = seed, name, true
				break
			}
		}
		if !found {
			t.Fatalf("%s: no seed below 100 draws it", tt.name)
		}
	}
	pg := pgtest.New(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Logf("seed %d draws %q", tt.seed, tt.fault)
			app := "chaos-" + tt.name // short: Postgres cuts application_name at 63 bytes
			in := &injector{rate: 1}
			h := in.hooks()
			if tt.planted {
				before := h.Before
				h.Before = func(ctx context.Context, c *drvwrap.Call) error {
					err := before(ctx, c)
					if lc, ok := err.(*lostCommit); ok {
						return lc.err
					}
					return err
				}
			}
			db := hookedPool(t, pg.DSN, app, h)
			ctx := context.Background()
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			in.arm(rand.New(rand.NewPCG(tt.seed, saltFaults)), nil)
			err = tx.Commit()
			fired, _ := in.disarm()
			if err == nil || len(fired) != 1 || fired[0] != tt.fault {
				t.Fatalf("commit: %v, fired %v; want an error from %q", err, fired, tt.fault)
			}
			var within time.Duration // a correct commit's session leaves its transaction: wait for it
			if tt.planted {
				// A planted leak keeps the session in its transaction for good: any
				// window sees it.
				within = 300 * time.Millisecond
			}
			open := serverSessions(t, pg.Admin, pg.Name, app, inTransaction, true, within)
			if tt.planted {
				if open == 0 {
					t.Fatal("with the commit error keeping the connection the check passed; want it to see the session idle in transaction")
				}
				return
			}
			if open != 0 {
				t.Errorf("server: %d session(s) of %s in a transaction after a %s; want 0 (the connection was pooled inside its transaction)", open, app, tt.fault)
			}
			if n := db.Stats().OpenConnections; n != 0 {
				t.Errorf("pool: %d open connection(s) after a %s; want 0", n, tt.fault)
			}
		})
	}
}

// TestBrokenConnFaultEndsSession: a fault that faults.Plan plays as a dead connection (badconn,
// or a pgerr Postgres sends as FATAL) ends the session on the server in a chaos run too, and
// the pool recovers; a non-fatal pgerr leaves the session as it was, which the same check
// sees.
func TestBrokenConnFaultEndsSession(t *testing.T) {
	tests := []struct {
		name  string
		fault string // the fault drawn at the exec
		ends  bool
	}{
		{"badconn", "badconn at exec", true},
		{"pgerr-57P01", "pgerr=" + faults.CodeAdminShutdown + " at exec", true},
		{"pgerr-08006", "pgerr=" + faults.CodeConnectionFailure + " at exec", true},
		{"pgerr-40001-kept", "pgerr=" + faults.CodeSerializationFailure + " at exec", false},
	}
	pg := pgtest.New(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed, found := uint64(0), false
			for ; seed < 500 && !found; seed++ {
				name, _ := faultAt(t, seed, drvwrap.OpExec)
				found = name == tt.fault
			}
			if !found {
				t.Fatalf("no seed below 500 draws %q", tt.fault)
			}
			seed--
			t.Logf("seed %d draws %q", seed, tt.fault)
			app := "chaos-" + tt.name
			in := &injector{rate: 1}
			db := hookedPool(t, pg.DSN, app, in.hooks())
			ctx := context.Background()
			tx, fired, err := faultedExec(t, db, in, seed)
			if err == nil || len(fired) != 1 || fired[0] != tt.fault {
				t.Fatalf("exec: %v, fired %v; want an error from %q", err, fired, tt.fault)
			}
			if got := serverSessions(t, pg.Admin, pg.Name, app, anyState, tt.ends, 0); (got == 0) != tt.ends {
				t.Errorf("server: %d session(s) of %s after %q; want the session ended: %v", got, app, tt.fault, tt.ends)
			}
			_ = tx.Rollback() // on a dead conn it fails
			// The pool recovers: database/sql discards the dead conn at its next use
			// (pgx's ResetSession reports it bad) and opens another.
			var one int
			if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Errorf("the pool after %q: %v; want it to recover", tt.fault, err)
			}
		})
	}
}

// hookedPool opens a pool on dsn whose sessions carry app as application_name, its driver
// wrapped with h; it is closed when the test ends.
func hookedPool(tb testing.TB, dsn, app string, h drvwrap.Hooks) *sql.DB {
	tb.Helper()
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	pc.RuntimeParams["application_name"] = app
	db := sql.OpenDB(drvwrap.WrapConnector(stdlib.GetConnector(*pc), h))
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// faultedExec begins a transaction on db and runs one statement in it with in armed by
// seed (a fault at every eligible step), and returns the transaction, what fired and the
// statement's error.
func faultedExec(tb testing.TB, db *sql.DB, in *injector, seed uint64) (*sql.Tx, []string, error) {
	tb.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	in.arm(rand.New(rand.NewPCG(seed, saltFaults)), func() {})
	_, err = tx.ExecContext(ctx, "SELECT 1")
	fired, _ := in.disarm()
	return tx, fired, err
}

// Session states serverSessions counts (a LIKE pattern on pg_stat_activity.state).
const (
	anyState      = "%"
	inTransaction = "idle in transaction%"
)

// serverSessions counts the backends of app on database dbName whose state is like state,
// polling until there are none when wantNone (or within passes; 0: until shortly before the
// test's deadline — a backend a busy server is still tearing down is not a finding), and
// returns the count.
func serverSessions(tb testing.TB, admin *sql.DB, dbName, app, state string, wantNone bool, within time.Duration) int {
	tb.Helper()
	deadline := time.Now().Add(within)
	if within == 0 {
		deadline = time.Now().Add(time.Minute)
		if t, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
			if d, ok := t.Deadline(); ok {
				deadline = d.Add(-10 * time.Second)
			}
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		err := admin.QueryRow(`SELECT count(*) FROM pg_stat_activity
WHERE datname = $1 AND application_name = $2 AND coalesce(state, '') LIKE $3`, dbName, app, state).Scan(&n)
		if err != nil {
			tb.Fatal(err)
		}
		if !wantNone || n == 0 || time.Now().After(deadline) {
			return n
		}
		<-tick.C
	}
}

// TestInjectedErrorAbortsTransaction: an error injected inside a transaction aborts it, as
// in a faults plan (faults.TxState): the next statement answers 25P02 without reaching the
// server, the commit rolls the real transaction back and returns pgx.ErrTxCommitRollback,
// and the connection stays usable; a rollback ends the aborted state.
func TestInjectedErrorAbortsTransaction(t *testing.T) {
	var seed uint64
	found := false
	for s := range uint64(100) {
		if name, _ := faultAt(t, s, drvwrap.OpExec); name == "error at exec" {
			seed, found = s, true
			break
		}
	}
	if !found {
		t.Fatal("no seed below 100 draws an error at exec")
	}
	t.Logf("seed %d draws an error at exec", seed)
	pg := pgtest.New(t)
	tests := []struct {
		name   string
		commit bool // end the aborted transaction with a commit (else a rollback)
	}{
		{"commit", true},
		{"rollback", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := "chaos-aborted-" + tt.name
			in := &injector{rate: 1}
			db := hookedPool(t, pg.DSN, app, in.hooks())
			db.SetMaxOpenConns(1)
			ctx := context.Background()
			tx, fired, err := faultedExec(t, db, in, seed)
			if !errors.Is(err, faults.ErrInjected) || len(fired) != 1 {
				t.Fatalf("exec: %v, fired %v; want the injected error", err, fired)
			}
			var pe *pgconn.PgError
			if _, err := tx.ExecContext(ctx, "SELECT 1"); !errors.As(err, &pe) || pe.Code != faults.CodeInFailedTransaction {
				t.Fatalf("exec after the injected error: %v; want 25P02", err)
			}
			if tt.commit {
				if err := tx.Commit(); !errors.Is(err, pgx.ErrTxCommitRollback) {
					t.Fatalf("commit: %v; want pgx.ErrTxCommitRollback", err)
				}
			} else if err := tx.Rollback(); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if open := serverSessions(t, pg.Admin, pg.Name, app, inTransaction, true, 0); open != 0 {
				t.Errorf("server: %d session(s) of %s in a transaction; want 0", open, app)
			}
			var one int
			if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Errorf("the next statement on the pool: %v; want it to run", err)
			}
			if n := db.Stats().OpenConnections; n != 1 {
				t.Errorf("pool: %d open connection(s); want the one, still usable", n)
			}
		})
	}
}
