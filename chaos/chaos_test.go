package chaos_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }

// The workload of these tests: a worker puts keys into a table of its own scope and reads
// them back, in a transaction each, correct or with one bug.

func migrate(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS kv (scope text NOT NULL, k text NOT NULL, PRIMARY KEY (scope, k))`)
	return err
}

func target(tb testing.TB) chaos.Target {
	tb.Helper()
	db := pgtest.New(tb, pgtest.WithMigration("kv-v1", migrate))
	return chaos.Target{DSN: db.DSN, Admin: db.Admin, AppName: db.AppName}
}

// put stores key in one transaction, rolling back on any error or panic.
func put(ctx context.Context, db *sql.DB, scope, key string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `INSERT INTO kv (scope, k) VALUES ($1, $2)`, scope, key); err != nil {
		return err
	}
	return tx.Commit()
}

// count reads how many times key is stored; swallow answers 0 on any error (the planted
// read bug).
func count(ctx context.Context, db *sql.DB, scope, key string, swallow bool) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM kv WHERE scope = $1 AND k = $2`, scope, key).Scan(&n)
	if err != nil && swallow {
		return 0, nil
	}
	return n, err
}

type bugs struct {
	swallowRead  bool // a failed read answers "not there"
	recoverPanic bool // get recovers a panic and reports success
	ignoreError  bool // put ignores the insert's error and commits
	extraRow     bool // put stores a row the invariant forbids
	setSession   bool // put changes a setting for the whole session
}

func workload(b bugs) *chaos.Workload {
	return &chaos.Workload{
		Name: "kv",
		Lookup: func(ctx context.Context, db *sql.DB, w *chaos.Worker, key string) (int, error) {
			return count(ctx, db, w.Scope, key, false)
		},
		Invariants: []chaos.Invariant{{Name: "no-stray-rows", Check: func(ctx context.Context, db *sql.DB, w *chaos.Worker) ([]string, error) {
			var n int
			err := db.QueryRowContext(ctx, `SELECT count(*) FROM kv WHERE scope = $1 AND k LIKE 'stray%'`, w.Scope).Scan(&n)
			if n > 0 {
				return []string{fmt.Sprintf("%d stray rows", n)}, err
			}
			return nil, err
		}}},
		Operations: []chaos.Operation{
			{Name: "put", Weight: 2, Run: func(ctx context.Context, db *sql.DB, o *chaos.Op) (err error) {
				key := fmt.Sprintf("k%d", o.Index)
				o.Write(key)
				switch {
				case b.ignoreError:
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					_, _ = tx.ExecContext(ctx, `INSERT INTO kv (scope, k) VALUES ($1, $2)`, o.Worker.Scope, key)
					if err := tx.Commit(); err != nil {
						_ = tx.Rollback()
						return err
					}
					return nil
				case b.setSession:
					if _, err := db.ExecContext(ctx, `SET work_mem = '8MB'`); err != nil {
						return err
					}
				case b.extraRow:
					if err := put(ctx, db, o.Worker.Scope, "stray"+key); err != nil {
						return err
					}
				}
				return put(ctx, db, o.Worker.Scope, key)
			}},
			{Name: "get", Run: func(ctx context.Context, db *sql.DB, o *chaos.Op) (err error) {
				if b.recoverPanic {
					defer func() {
						if recover() != nil {
							err = nil
						}
					}()
				}
				acked := o.Known(chaos.Acked)
				if len(acked) == 0 {
					return nil
				}
				key := acked[o.Rand.IntN(len(acked))]
				n, err := count(ctx, db, o.Worker.Scope, key, b.swallowRead)
				if err == nil {
					o.Saw(key, n)
				}
				return err
			}},
		},
	}
}

// TestChecks shows each check of a run passing on correct code and failing on the bug it
// is for. A run that ends without the finding is followed by one on the next seed.
func TestChecks(t *testing.T) {
	tests := []struct {
		name string
		bugs bugs
		want string // the invariant; "" for none
	}{
		{"correct", bugs{}, ""},
		{"read", bugs{swallowRead: true}, "read"},
		{"swallowed-panic", bugs{recoverPanic: true}, "swallowed-panic"},
		{"swallowed-error", bugs{ignoreError: true}, "swallowed-error"},
		{"invariant", bugs{extraRow: true}, "no-stray-rows"},
		{"session", bugs{setSession: true}, "session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithDeadline(t.Context(), testkit.Within(t, 10*time.Minute))
			t.Cleanup(cancel)
			for seed := int64(1); ; seed++ {
				cfg := chaos.Config{Seed: seed, Workers: 2, Ops: 200, FaultRate: 0.1, Panics: true, NoGoroutineCheck: true, MaxWrites: 40}
				res, err := chaos.Run(ctx, workload(tt.bugs), cfg, target(t))
				if err != nil {
					t.Fatal(err)
				}
				if tt.want == "" {
					for _, v := range res.Violations {
						t.Errorf("seed %d: violation on correct code: %s\ntrace:\n%s", seed, v, v.Trace)
					}
					if res.Faults == 0 || res.Acked == 0 {
						t.Errorf("seed %d: %d faults, %d acknowledged writes: the run tested nothing", seed, res.Faults, res.Acked)
					}
					return
				}
				for _, v := range res.Violations {
					t.Logf("seed %d: %s", seed, v)
					if v.Invariant == tt.want {
						return
					}
				}
				if ctx.Err() != nil || seed == 5 {
					t.Fatalf("no %s violation in seeds 1..%d", tt.want, seed)
				}
			}
		})
	}
}

// TestWorkloadValidate: a workload no run can run is an error naming what is wrong.
func TestWorkloadValidate(t *testing.T) {
	run := func(context.Context, *sql.DB, *chaos.Op) error { return nil }
	tests := []struct {
		name string
		wl   *chaos.Workload
		want string
	}{
		{"nil", nil, "no operations"},
		{"no-ops", &chaos.Workload{}, "no operations"},
		{"no-name", &chaos.Workload{Operations: []chaos.Operation{{Run: run}}}, "has no name"},
		{"no-run", &chaos.Workload{Operations: []chaos.Operation{{Name: "x"}}}, `"x" has no Run`},
		{"no-run-pgx", &chaos.Workload{Pgx: true, Operations: []chaos.Operation{{Name: "x", Run: run}}}, `"x" has no RunPgx`},
		{"weight", &chaos.Workload{Operations: []chaos.Operation{{Name: "x", Run: run, Weight: -1}}}, "weight -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chaos.Run(context.Background(), tt.wl, chaos.Config{Workers: 1, Ops: 1}, chaos.Target{DSN: "postgres://x"})
			if !errors.Is(err, chaos.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v; want ErrConfig naming %q", err, tt.want)
			}
		})
	}
}

// TestRunManyWorkers: a correct run with many workers on a loaded 2-core machine is no
// finding: an operation queued for a connection — the server forking backends for every
// worker at once, or a share of its connections smaller than the workers — is not charged
// to its deadline, which grows with the workers per CPU.
func TestRunManyWorkers(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		share   int // connections the workers share (0: what the server has free)
	}{
		{"workers-100", 100, 0},
		{"workers-48-share-4", 48, 4},   // more workers than connections: none kept idle
		{"workers-24-share-32", 24, 32}, // fewer: each keeps one idle
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := target(t)
			ctx, cancel := context.WithDeadline(t.Context(), testkit.Within(t, 10*time.Minute))
			t.Cleanup(cancel)
			const seed = 13
			t.Logf("seed %d", seed)
			cfg := chaos.Config{Seed: seed, Workers: tt.workers, Ops: 3 * tt.workers, FaultRate: 0.03, NoGoroutineCheck: true}
			if tt.share > 0 {
				chaos.SetConnShare(&cfg, tt.share)
			}
			res, err := chaos.Run(ctx, workload(bugs{}), cfg, tg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("ops %d faults %d acked %d in %s, %s queued for a connection", res.Operations, res.Faults, res.Acked, res.Duration, res.Queued)
			for _, v := range res.Violations {
				t.Errorf("violation: %s\ntrace:\n%s", v, v.Trace)
			}
			if res.Operations != int64(cfg.Ops) {
				t.Errorf("ran %d operations; want %d", res.Operations, cfg.Ops)
			}
		})
	}
}
