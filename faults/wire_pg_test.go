package faults_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/lib/pq"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// migrateItems creates the one table the wire and server tests write to.
func migrateItems(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE items (id int PRIMARY KEY)`)
	return err
}

func newItemsDB(tb testing.TB) *pgtest.Database {
	tb.Helper()
	return pgtest.New(tb, pgtest.WithMigration("faults-items-v1", migrateItems))
}

// connConfig parses db's DSN with application_name set to db.AppName+suffix,
// so the connections opened from it are told apart from db.DB's.
func connConfig(tb testing.TB, db *pgtest.Database, suffix string) (*pgx.ConnConfig, string) {
	tb.Helper()
	cfg, err := pgx.ParseConfig(db.DSN)
	if err != nil {
		tb.Fatalf("parse DSN: %v", err)
	}
	app := db.AppName + suffix
	cfg.RuntimeParams["application_name"] = app
	return cfg, app
}

// wiredConfig is connConfig with the suffix "-wired" and a fresh Wire
// installed on it.
func wiredConfig(tb testing.TB, db *pgtest.Database) (*pgx.ConnConfig, *faults.Wire, string) {
	tb.Helper()
	cfg, app := connConfig(tb, db, "-wired")
	w := faults.NewWire()
	w.Install(&cfg.Config)
	return cfg, w, app
}

// wiredConn opens one pgx connection through a fresh Wire, closed at cleanup.
func wiredConn(tb testing.TB, db *pgtest.Database) (*pgx.Conn, *faults.Wire, string) {
	tb.Helper()
	cfg, w, app := wiredConfig(tb, db)
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn, w, app
}

// openPool opens a database/sql pool of one connection from cfg.
func openPool(tb testing.TB, cfg *pgx.ConnConfig) *sql.DB {
	tb.Helper()
	pool := stdlib.OpenDB(*cfg)
	tb.Cleanup(func() { pool.Close() })
	pool.SetMaxOpenConns(1)
	return pool
}

// itemIDs returns the ids in items, sorted.
func itemIDs(tb testing.TB, db *sql.DB) []int {
	tb.Helper()
	rows, err := db.QueryContext(tb.Context(), `SELECT id FROM items ORDER BY id`)
	if err != nil {
		tb.Fatalf("read items: %v", err)
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			tb.Fatalf("read items: %v", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("read items: %v", err)
	}
	return ids
}

// TestWirePGActsAtNthQuery runs three simple-protocol INSERTs through a
// wired connection with a rule on the second Query, and checks from another
// connection which rows the server got.
func TestWirePGActsAtNthQuery(t *testing.T) {
	tests := []struct {
		name    string
		rule    faults.WireRule
		timeout time.Duration // for the targeted (second) INSERT; 0: the test's
		errAt   int           // the INSERT (1-based) that fails; 0: none
		want    []int         // the rows the server has
	}{
		{name: "cut-before", rule: faults.WireRule{Message: faults.WireQuery, N: 2, Action: faults.WireCutBefore}, errAt: 2, want: []int{1}},
		{name: "cut-after", rule: faults.WireRule{Message: faults.WireQuery, N: 2, Action: faults.WireCutAfter}, errAt: 2, want: []int{1, 2}},
		{name: "delay", rule: faults.WireRule{Message: faults.WireQuery, N: 2, Action: faults.WireDelay, Delay: 20 * time.Millisecond}, want: []int{1, 2, 3}},
		{name: "stall-until-context", rule: faults.WireRule{Message: faults.WireQuery, N: 2, Action: faults.WireStall}, timeout: 200 * time.Millisecond, errAt: 2, want: []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newItemsDB(t)
			conn, w, app := wiredConn(t, db)
			if err := w.Arm(tt.rule); err != nil {
				t.Fatal(err)
			}
			failed := 0
			for i := 1; i <= 3 && failed == 0; i++ {
				ctx := t.Context()
				if tt.timeout > 0 && i == 2 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO items VALUES (%d)`, i)); err != nil {
					failed = i
					t.Logf("INSERT %d: %v", i, err)
				}
			}
			if failed != tt.errAt {
				t.Fatalf("failing INSERT: got %d; want %d (0: none)", failed, tt.errAt)
			}
			if f := w.Fired(); len(f) != 1 || f[0].SQL != "INSERT INTO items VALUES (2)" {
				t.Errorf("Fired() = %+v; want one firing on INSERT 2", f)
			}
			if tt.errAt != 0 {
				if !conn.IsClosed() {
					t.Errorf("connection still open after the fault; want it closed")
				}
				// The server acts on what it received before it notices the end.
				if err := faults.NewServer(db.Admin).WaitGone(t.Context(), app); err != nil {
					t.Fatal(err)
				}
			}
			if got := itemIDs(t, db.DB); !slices.Equal(got, tt.want) {
				t.Errorf("rows on the server: got %v; want %v", got, tt.want)
			}
		})
	}
}

// TestWirePGStallReleasedByDisarm stalls an INSERT, checks the server has
// not seen it, then disarms: the INSERT goes through.
func TestWirePGStallReleasedByDisarm(t *testing.T) {
	db := newItemsDB(t)
	cfg, w, _ := wiredConfig(t, db)
	pool := openPool(t, cfg)
	if err := pool.PingContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Arm(faults.WireRule{Message: faults.WireQuery, N: 1, Action: faults.WireStall}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := pool.ExecContext(t.Context(), `INSERT INTO items VALUES (7)`)
		done <- err
	}()
	testkit.Eventually(t, func() bool { return len(w.Fired()) == 1 }, "the stall to fire")
	if got := itemIDs(t, db.DB); len(got) != 0 {
		t.Errorf("rows while stalled: got %v; want none", got)
	}
	w.Disarm()
	if err := <-done; err != nil {
		t.Fatalf("stalled INSERT after Disarm: %v", err)
	}
	if got := itemIDs(t, db.DB); !slices.Equal(got, []int{7}) {
		t.Errorf("rows after Disarm: got %v; want [7]", got)
	}
}

// TestWirePGAmbiguousCommit cuts the connection around the COMMIT of a
// database/sql transaction: after it (the ambiguous commit) the row is there
// although Commit returned an error; before it, the row is not. Through pgx
// (the Wire installed on its config) and through lib/pq (its Connector
// dialing through Wire.Dialer).
func TestWirePGAmbiguousCommit(t *testing.T) {
	tests := []struct {
		name    string
		action  faults.WireAction
		wantRow bool
	}{
		{name: "cut-after-commit", action: faults.WireCutAfter, wantRow: true},
		{name: "cut-before-commit", action: faults.WireCutBefore, wantRow: false},
	}
	for _, driver := range []string{"pgx", "pq"} {
		for _, tt := range tests {
			t.Run(driver+"/"+tt.name, func(t *testing.T) {
				db := newItemsDB(t)
				pool, w, app := wiredPool(t, db, driver)
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
				err = tx.Commit()
				if err == nil {
					t.Fatal("Commit: got nil; want the error of a dead connection")
				}
				t.Logf("Commit: %v", err)
				if f := w.Fired(); len(f) != 1 || f[0].Message != faults.WireQuery {
					t.Errorf("Fired() = %+v; want one firing on the COMMIT query", f)
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
}

// wiredPool opens a pool of one connection through a fresh Wire, with pgx
// stdlib ("pgx") or lib/pq ("pq"), under its own application_name.
func wiredPool(tb testing.TB, db *pgtest.Database, driver string) (*sql.DB, *faults.Wire, string) {
	tb.Helper()
	if driver == "pgx" {
		cfg, w, app := wiredConfig(tb, db)
		return openPool(tb, cfg), w, app
	}
	u, err := url.Parse(db.DSN)
	if err != nil {
		tb.Fatal(err)
	}
	app := db.AppName + "-pq"
	q := u.Query()
	q.Set("application_name", app)
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	c, err := pq.NewConnector(u.String())
	if err != nil {
		tb.Fatal(err)
	}
	w := faults.NewWire()
	c.Dialer(w.Dialer())
	pool := sql.OpenDB(c)
	tb.Cleanup(func() { _ = pool.Close() })
	pool.SetMaxOpenConns(1)
	return pool, w, app
}

// TestWirePGExtendedCommit sends COMMIT through the extended protocol as a
// prepared statement: the commit is recognised at its Execute, also the
// second time, when only Bind and Execute are sent.
func TestWirePGExtendedCommit(t *testing.T) {
	db := newItemsDB(t)
	conn, w, app := wiredConn(t, db)
	ctx := t.Context()
	pg := conn.PgConn()
	if _, err := pg.Prepare(ctx, "commit_stmt", "COMMIT", nil); err != nil {
		t.Fatalf("prepare COMMIT: %v", err)
	}
	commit := func() error { return pg.ExecPrepared(ctx, "commit_stmt", nil, nil, nil).Read().Err }
	for i, step := range []string{`BEGIN`, `INSERT INTO items VALUES (1)`} {
		if _, err := conn.Exec(ctx, step); err != nil {
			t.Fatalf("step %d %s: %v", i, step, err)
		}
	}
	if err := commit(); err != nil {
		t.Fatalf("first COMMIT: %v", err)
	}
	for i, step := range []string{`BEGIN`, `INSERT INTO items VALUES (2)`} {
		if _, err := conn.Exec(ctx, step); err != nil {
			t.Fatalf("step %d %s: %v", i, step, err)
		}
	}
	if err := w.Arm(faults.WireRule{Message: faults.WireCommit, N: 1, Action: faults.WireCutAfter}); err != nil {
		t.Fatal(err)
	}
	if err := commit(); err == nil {
		t.Fatal("second COMMIT: got nil; want the error of a dead connection")
	}
	if f := w.Fired(); len(f) != 1 || f[0].Message != faults.WireExecute {
		t.Errorf("Fired() = %+v; want one firing on an Execute", f)
	}
	if h := w.Hits(); h[faults.WireCommit] != 2 || h[faults.WireParse] != 1 || h[faults.WireExecute] != 2 {
		t.Errorf("Hits() = %v; want 2 commits, 2 Executes and 1 Parse", h)
	}
	if err := faults.NewServer(db.Admin).WaitGone(ctx, app); err != nil {
		t.Fatal(err)
	}
	if got := itemIDs(t, db.DB); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("rows: got %v; want [1 2] (the cut came after the second COMMIT)", got)
	}
}

// errorsIsAny reports whether err is one of targets.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// BenchmarkWirePassThrough measures the wire wrapper with nothing armed
// against the plain connection, in the same run and on the same database:
// one query per iteration, over the simple protocol (Query) and the extended
// protocol (Bind, Describe, Execute, Sync of a cached statement).
func BenchmarkWirePassThrough(b *testing.B) {
	db := newItemsDB(b)
	for _, proto := range []struct {
		name string
		run  func(ctx context.Context, c *pgx.Conn, i int) error
	}{
		{name: "simple", run: func(ctx context.Context, c *pgx.Conn, _ int) error {
			_, err := c.Exec(ctx, `SELECT 1`)
			return err
		}},
		{name: "extended", run: func(ctx context.Context, c *pgx.Conn, i int) error {
			var n int
			return c.QueryRow(ctx, `SELECT $1::int`, i).Scan(&n)
		}},
	} {
		for _, wired := range []bool{false, true} {
			name := proto.name + "/plain"
			if wired {
				name = proto.name + "/wire"
			}
			b.Run(name, func(b *testing.B) {
				cfg, _ := connConfig(b, db, "-bench")
				if wired {
					faults.NewWire().Install(&cfg.Config)
				}
				ctx := b.Context()
				conn, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { conn.Close(context.WithoutCancel(ctx)) })
				if err := proto.run(ctx, conn, 0); err != nil { // warm the statement cache
					b.Fatal(err)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					if err := proto.run(ctx, conn, i); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestWirePGStepBoundaries cuts around one database/sql statement with
// arguments on a fresh connection, which pgx sends as a prepare round trip
// (Parse, Describe, Sync) and then the execution (Bind, Execute, Sync).
// "Any#1:cut-before" loses the statement before any byte of it left: pgx
// reports it safe to retry (driver.ErrBadConn; on a pool, not a held Conn,
// database/sql would retry on a new connection) and the row is not there.
// "Request#1:cut-after" skips the prepare round trip, lets the execution
// reach the server and loses the answer: the row is there although the
// caller got an error. "Execute#1:cut-after" is not enough for that: without
// its Sync the autocommitted statement is rolled back.
func TestWirePGStepBoundaries(t *testing.T) {
	tests := []struct {
		name       string
		rule       faults.WireRule
		wantBadCon bool
		fired      string
		want       []int
	}{
		{name: "any-1-cut-before", rule: faults.WireRule{Message: faults.WireAny, N: 1, Action: faults.WireCutBefore}, wantBadCon: true, fired: faults.WireParse},
		{name: "request-1-cut-after", rule: faults.WireRule{Message: faults.WireRequest, N: 1, Action: faults.WireCutAfter}, fired: faults.WireSync, want: []int{3}},
		// Cut after the Execute, before its Sync: the server runs the INSERT
		// in the implicit transaction that only the Sync would commit, sees
		// the connection end, and rolls it back.
		{name: "execute-1-cut-after-autocommit", rule: faults.WireRule{Message: faults.WireExecute, N: 1, Action: faults.WireCutAfter}, fired: faults.WireExecute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newItemsDB(t)
			cfg, w, app := wiredConfig(t, db)
			pool := openPool(t, cfg)
			// Hold the connection: taking one from the pool may send a ping
			// (pgx stdlib's ResetSession after a second idle), which would be
			// the next message.
			conn, err := pool.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			if err := w.Arm(tt.rule); err != nil {
				t.Fatal(err)
			}
			_, err = conn.ExecContext(t.Context(), `INSERT INTO items VALUES ($1)`, 3)
			if err == nil {
				t.Fatal("INSERT: got nil; want an error")
			}
			if got := errors.Is(err, driver.ErrBadConn); got != tt.wantBadCon {
				t.Errorf("INSERT: got %v; want driver.ErrBadConn %v", err, tt.wantBadCon)
			}
			if f := w.Fired(); len(f) != 1 || f[0].Message != tt.fired {
				t.Errorf("Fired() = %+v; want one firing on a %s", f, tt.fired)
			}
			if err := faults.NewServer(db.Admin).WaitGone(t.Context(), app); err != nil {
				t.Fatal(err)
			}
			if got := itemIDs(t, db.DB); !slices.Equal(got, tt.want) {
				t.Errorf("rows: got %v; want %v", got, tt.want)
			}
		})
	}
}
