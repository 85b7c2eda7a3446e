package scenarios

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
)

// verdictOp is an operation on one fresh key of the kv table that also runs
// on sqlmock (Setup returns a placeholder there): run does the work.
func verdictOp(name string, run func(ctx context.Context, db *sql.DB, key string) error) Operation {
	op := kvOp(name, run)
	setup := op.Setup
	op.Setup = func(ctx context.Context, db *sql.DB) (Fixture, error) {
		if db == nil {
			return "mock", nil
		}
		return setup(ctx, db)
	}
	return op
}

const bumpSQL = `UPDATE kv SET v = v + 1 WHERE k = $1`

// The operations the verdict tests run: correct code, and the same code
// with one bug planted.
var (
	// preparedClosed prepares its statement on the pool and closes it.
	preparedClosed = verdictOp("PreparedClosed", func(ctx context.Context, db *sql.DB, key string) error {
		stmt, err := db.PrepareContext(ctx, bumpSQL)
		if err != nil {
			return err
		}
		defer stmt.Close()
		_, err = stmt.ExecContext(ctx, key)
		return err
	})
	// preparedNeverClosed is a bug: its statement stays prepared on the
	// session the next user of the connection gets.
	preparedNeverClosed = verdictOp("PreparedNeverClosed", func(ctx context.Context, db *sql.DB, key string) error {
		stmt, err := db.PrepareContext(ctx, bumpSQL)
		if err != nil {
			return err
		}
		_, err = stmt.ExecContext(ctx, key)
		return err
	})
	// readThenBump reads the value, then bumps it, both on the caller's
	// context.
	readThenBump = verdictOp("ReadThenBump", func(ctx context.Context, db *sql.DB, key string) error {
		var v int
		if err := db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, key).Scan(&v); err != nil {
			return err
		}
		_, err := db.ExecContext(ctx, bumpSQL, key)
		return err
	})
	// readThenBumpBackground is a bug: its write drops the caller's context.
	readThenBumpBackground = verdictOp("ReadThenBumpBackground", func(ctx context.Context, db *sql.DB, key string) error {
		var v int
		if err := db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, key).Scan(&v); err != nil {
			return err
		}
		_, err := db.ExecContext(context.Background(), bumpSQL, key)
		return err
	})
)

// verdictOps are recorded as golden traces for the sqlmock runs.
func verdictOps() []Operation {
	return []Operation{preparedClosed, preparedNeverClosed, readThenBump, readThenBumpBackground}
}

// TestGoldenVerdicts records the verdict tests' operations on PostgreSQL and
// compares their traces with testdata/<operation>.trace. Refresh with -update.
func TestGoldenVerdicts(t *testing.T) {
	cfg := kvConfig(t)
	GoldenTests(t, "testdata", *update, Config{DSN: cfg.DSN, DB: cfg.DB}, verdictOps()...)
}

// verdictBackends are the two backends a verdict test runs on.
var verdictBackends = []struct {
	name string
	cfg  func(t *testing.T) Config
}{
	{"sqlmock", func(*testing.T) Config { return Config{Backend: Sqlmock, Golden: os.DirFS("testdata")} }},
	{"postgres", func(t *testing.T) Config { return kvConfig(t) }},
}

// runOnly runs op's cases that keep accepts on cfg and returns the report;
// it fails the test when no case was kept.
func runOnly(t *testing.T, cfg Config, op Operation, keep func(Case) bool) Report {
	t.Helper()
	cfg.Only = keep
	rep, err := Run(t.Context(), cfg, op)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) == 0 {
		t.Fatalf("%s: no case kept; want at least one", op.Name)
	}
	return rep
}

// invariantsOf returns the invariants res broke, joined with ",".
func invariantsOf(res Result) string {
	var out []string
	for _, f := range res.Findings {
		out = append(out, string(f.Invariant))
	}
	return strings.Join(out, ",")
}

// TestStmtCloseFault: a failed statement close need not reach the caller
// (database/sql drops it for a statement prepared on the pool): code that
// closes its statement is clean at the stmt-close cases, on sqlmock and on
// PostgreSQL.
func TestStmtCloseFault(t *testing.T) {
	for _, b := range verdictBackends {
		t.Run(b.name, func(t *testing.T) {
			rep := runOnly(t, b.cfg(t), preparedClosed, func(c Case) bool { return c.StepKind == faults.StepStmtClose })
			for _, res := range rep.Results {
				if !res.Fired {
					t.Errorf("%s: the fault never fired", res.Case)
				}
				for _, f := range res.Findings {
					t.Errorf("false alarm on code that closes its statement:\n%s", f.Error())
				}
			}
		})
	}
}

// TestForeignContextCaught: a cancel fault at a call made on a context of
// the operation's own (context.Background()) is a context-honoured finding,
// on sqlmock and on PostgreSQL; the same operation passing the caller's
// context down is clean.
func TestForeignContextCaught(t *testing.T) {
	cancelAtBump := func(c Case) bool {
		return c.Fault.Kind == faults.KindCancel && c.StepKind == faults.StepExec && strings.HasPrefix(c.SQL, "UPDATE")
	}
	for _, b := range verdictBackends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.cfg(t)
			t.Run("caller-context", func(t *testing.T) {
				for _, res := range runOnly(t, cfg, readThenBump, cancelAtBump).Results {
					if res.Failed() {
						t.Errorf("false alarm on code that passes the caller's context:\n%s", res.Findings[0].Error())
					}
				}
			})
			t.Run("background", func(t *testing.T) {
				for _, res := range runOnly(t, cfg, readThenBumpBackground, cancelAtBump).Results {
					found := false
					for _, f := range res.Findings {
						found = found || (f.Invariant == InvContext && strings.Contains(f.Message, "UPDATE kv"))
					}
					if !found {
						t.Errorf("%s: got findings [%s]; want %q naming the UPDATE (it ran on context.Background())", res.Case, invariantsOf(res), InvContext)
					}
				}
			})
		})
	}
}

// setInTx returns an operation that runs set, then the bump, in one
// transaction.
func setInTx(name, set string) Operation {
	return verdictOp(name, func(ctx context.Context, db *sql.DB, key string) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, set); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, bumpSQL, key); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// TestSessionStateCaught: on PostgreSQL, a session-level SET inside the
// unit (it outlives the transaction) and a statement never closed (it stays
// prepared on the session) are session-state findings of the clean case;
// SET LOCAL and a closed statement pass the whole matrix clean.
func TestSessionStateCaught(t *testing.T) {
	cfg := kvConfig(t)
	tests := []struct {
		name  string
		op    Operation
		clean bool   // only the clean case (a finding is wanted there)
		want  string // in the session-state finding; "": none wanted, in any case
	}{
		{"session-set", setInTx("SessionSet", "SET statement_timeout = 4321"), true, "statement_timeout=4321ms set for the whole session"},
		{"set-local", setInTx("LocalSet", "SET LOCAL statement_timeout = 4321"), false, ""},
		{"statement-never-closed", preparedNeverClosed, true, "never deallocated"},
		{"statement-closed", preparedClosed, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep := func(Case) bool { return true }
			if tt.clean {
				keep = Case.Clean
			}
			rep := runOnly(t, cfg, tt.op, keep)
			if tt.want == "" && len(rep.Results) < 10 {
				t.Errorf("got %d cases; want the whole matrix", len(rep.Results))
			}
			for _, res := range rep.Results {
				found := false
				for _, f := range res.Findings {
					if f.Invariant == InvSession && tt.want != "" && strings.Contains(f.Message, tt.want) {
						found = true
						continue
					}
					t.Errorf("unexpected finding:\n%s", f.Error())
				}
				if tt.want != "" && !found {
					t.Errorf("%s: got findings [%s]; want %q saying %q", res.Case, invariantsOf(res), InvSession, tt.want)
				}
			}
		})
	}
}

// BenchmarkSessionCheck measures one clean case on PostgreSQL with the
// session-state check and without it: what the check adds to every case.
func BenchmarkSessionCheck(b *testing.B) {
	cfg := kvConfig(b)
	for _, bb := range []struct {
		name string
		off  bool
	}{{"with", false}, {"without", true}} {
		b.Run(bb.name, func(b *testing.B) {
			cfg := cfg
			cfg.NoSessionCheck = bb.off
			cfg.NoGoroutineCheck = true
			r, err := NewRunner(b.Context(), cfg, readThenBump)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			c := r.Cases()[0]
			for b.Loop() {
				if res := r.RunCase(b.Context(), c); res.Failed() {
					b.Fatal(res.Findings[0].Error())
				}
			}
		})
	}
}

// lockLeakOp is a bug: each run takes a connection, locks the shared row on
// it inside a transaction begun with a plain BEGIN, and never gives the
// connection back, so the lock stays until the session ends. Its Setup
// writes the shared row (and waits for that lock); with lockedState its
// State reads the row FOR SHARE (and waits for it too).
func lockLeakOp(name string, lockedState bool) Operation {
	op := kvOp(name, func(ctx context.Context, db *sql.DB, key string) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `SELECT 1 FROM kv WHERE k = 'shared' FOR UPDATE`); err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, bumpSQL, key)
		return err
	})
	setup := op.Setup
	op.Setup = func(ctx context.Context, db *sql.DB) (Fixture, error) {
		if _, err := db.ExecContext(ctx, `INSERT INTO kv VALUES ('shared', 0) ON CONFLICT (k) DO UPDATE SET v = 0`); err != nil {
			return nil, err
		}
		return setup(ctx, db)
	}
	if lockedState {
		state := op.State
		op.State = func(ctx context.Context, db *sql.DB, fx Fixture) (string, error) {
			if _, err := db.ExecContext(ctx, `SELECT 1 FROM kv WHERE k = 'shared' FOR SHARE`); err != nil {
				return "", err
			}
			return state(ctx, db, fx)
		}
	}
	return op
}

// TestLeakedLockBounded: an operation that leaks a connection holding a row
// lock is reported as a leak, and the next case's Setup, which needs that
// row, still runs (the runner ends what the last case left before Setup);
// a State read that waits for the leaked lock ends at the case's bound with
// a deadline finding naming the lock's holder. Every case finishes.
func TestLeakedLockBounded(t *testing.T) {
	cfg := kvConfig(t)
	cfg.Timeout = time.Second
	cfg.NoGoroutineCheck = true
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	firstThree := func() func(Case) bool {
		n := 0
		return func(Case) bool { n++; return n <= 3 }
	}
	t.Run("setup-after-leak", func(t *testing.T) {
		cfg := cfg
		cfg.Only = firstThree()
		rep, err := Run(ctx, cfg, lockLeakOp("LeaksLockedConn", false))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Results) != 3 {
			t.Fatalf("got %d cases; want 3", len(rep.Results))
		}
		for _, res := range rep.Results {
			inv := map[Invariant]bool{}
			for _, f := range res.Findings {
				inv[f.Invariant] = true
			}
			if !inv[InvPool] || inv[InvSetup] || inv[InvDeadline] {
				t.Errorf("%s: got findings [%s]; want %q (the connection never given back) and no setup or deadline finding",
					res.Case, invariantsOf(res), InvPool)
			}
		}
	})
	t.Run("state-waits-for-leak", func(t *testing.T) {
		cfg := cfg
		cfg.Only = Case.Clean
		rep, err := Run(ctx, cfg, lockLeakOp("LeaksLockedConnState", true))
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range rep.Results {
			found := false
			for _, f := range res.Findings {
				found = found || (f.Invariant == InvDeadline && strings.Contains(f.Message, "read the state back") &&
					strings.Contains(f.Message, "FOR UPDATE"))
			}
			if !found {
				t.Errorf("%s: got findings [%s]; want %q for the state read, naming the leaked lock's query", res.Case, invariantsOf(res), InvDeadline)
			}
			for _, f := range res.Findings {
				t.Logf("%s: %s", f.Invariant, f.Message)
			}
		}
	})
}

// bumpWithoutCancel is a bug: its write keeps the caller's values but drops
// its cancellation (context.WithoutCancel), so a cancelled caller waits for
// as long as the statement is blocked.
var bumpWithoutCancel = verdictOp("BumpWithoutCancel", func(ctx context.Context, db *sql.DB, key string) error {
	_, err := db.ExecContext(context.WithoutCancel(ctx), bumpSQL, key)
	return err
})

// bumpInTx bumps in a transaction, on the caller's context.
var bumpInTx = setInTx("BumpInTx", "SELECT 1")

// TestCancelBlocked: a statement blocked on a lock
// when the caller's context is cancelled must return promptly with the
// cancellation. Code that passes the caller's context down is clean (in and
// out of a transaction); a call on context.WithoutCancel stays blocked and
// one on context.Background() cannot be cancelled at all: both are
// context-honoured findings naming the statement.
func TestCancelBlocked(t *testing.T) {
	cfg := kvConfig(t)
	isCancelBlocked := func(c Case) bool { return c.Fault.Kind == faults.KindCancelBlocked }
	tests := []struct {
		name  string
		op    Operation
		cases int    // cancel-blocked cases wanted
		want  string // in the context-honoured finding; "": clean
	}{
		{"caller-context", readThenBump, 2, ""},
		{"in-transaction", bumpInTx, 1, ""},
		{"without-cancel", bumpWithoutCancel, 1, "does not honour the caller's context"},
		{"background", readThenBumpBackground, 2, "did not run on the caller's context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			rep := runOnly(t, cfg, tt.op, isCancelBlocked)
			if len(rep.Results) != tt.cases {
				t.Errorf("got %d cancel-blocked cases; want %d", len(rep.Results), tt.cases)
			}
			for _, res := range rep.Results {
				if !res.Fired {
					t.Errorf("%s: the fault never fired", res.Case)
				}
				if tt.want == "" || !strings.HasPrefix(res.Case.SQL, "UPDATE") {
					for _, f := range res.Findings {
						t.Errorf("false alarm:\n%s", f.Error())
					}
					continue
				}
				found := false
				for _, f := range res.Findings {
					found = found || (f.Invariant == InvContext && strings.Contains(f.Message, tt.want) && strings.Contains(f.Message, "UPDATE kv"))
				}
				if !found {
					t.Errorf("%s: got findings [%s]; want %q saying %q and naming the UPDATE", res.Case, invariantsOf(res), InvContext, tt.want)
				}
			}
			t.Logf("%d cancel-blocked cases in %s", len(rep.Results), time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestStmtNeverClosedOnSqlmock: on sqlmock, a statement the golden trace
// shows closed is expected closed, so a regression that drops the Close
// (the buggy run against the correct code's golden trace) fails the clean
// case's expectations; the correct code passes its whole matrix.
func TestStmtNeverClosedOnSqlmock(t *testing.T) {
	cfg := Config{Backend: Sqlmock, Golden: os.DirFS("testdata")}
	t.Run("closed", func(t *testing.T) {
		rep := runOnly(t, cfg, preparedClosed, func(Case) bool { return true })
		for _, f := range rep.Findings() {
			t.Errorf("false alarm on code that closes its statement:\n%s", f.Error())
		}
	})
	t.Run("close-dropped", func(t *testing.T) {
		regressed := preparedNeverClosed
		regressed.Name = preparedClosed.Name // the golden trace of the correct code
		rep := runOnly(t, cfg, regressed, Case.Clean)
		found := false
		for _, f := range rep.Findings() {
			found = found || (f.Invariant == InvExpectations && strings.Contains(f.Message, "closed"))
		}
		if !found {
			t.Errorf("got findings %v; want %q saying the prepared statement was not closed", rep.Findings(), InvExpectations)
		}
	})
}
