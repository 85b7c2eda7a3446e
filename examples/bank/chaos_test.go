package bank

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// The bank under chaos: each worker owns four accounts (its scope), moves money between
// them, reads them back, and the run checks that money is conserved, that every
// acknowledged transfer is stored (and no failed one), and that nothing leaks.

const (
	chaosAccounts = 4
	chaosOpening  = 10_000_000 // cents each account opens with
)

// chaosScope is a worker's accounts.
type chaosScope struct{ ids []int64 }

// chaosNotifier is the Notifier of a chaos operation: a call outside the database, so that
// a transaction held across it is a finding.
type chaosNotifier struct{ o *chaos.Op }

func (n chaosNotifier) TransferCommitted(ctx context.Context, _ Transfer) error {
	return n.o.External(ctx, "audit log", func(context.Context) error { return nil })
}

// transferKey names a transfer in the ledger. The amount is unique within a scope (it
// comes from the operation's index), so a transfer is found by its accounts and amount.
func transferKey(from, to, amount int64) string {
	return fmt.Sprintf("transfer:%d:%d:%d", from, to, amount)
}

func accountKey(id int64) string { return "account:" + strconv.FormatInt(id, 10) }

// chaosWorkload is the bank's chaos workload over the store a Store-like value gives
// (database/sql: sqlStore; pgx: pgxStore, with Pgx set).
func chaosWorkload(name string, sqlStore newAccounts, pgxStore newPgxAccounts) *chaos.Workload {
	wl := &chaos.Workload{
		Name:  name,
		Pgx:   pgxStore != nil,
		Setup: chaosSetup,
		Lookup: func(ctx context.Context, db *sql.DB, _ *chaos.Worker, key string) (int, error) {
			var n int
			var err error
			if strings.HasPrefix(key, "account:") {
				err = db.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE id = $1`, strings.TrimPrefix(key, "account:")).Scan(&n)
			} else {
				var from, to, amount int64
				if _, serr := fmt.Sscanf(key, "transfer:%d:%d:%d", &from, &to, &amount); serr != nil {
					return 0, fmt.Errorf("bad key %q: %w", key, serr)
				}
				err = db.QueryRowContext(ctx, `SELECT count(*) FROM transfers WHERE from_account = $1 AND to_account = $2 AND amount = $3`,
					from, to, amount).Scan(&n)
			}
			return n, err
		},
		Invariants: []chaos.Invariant{
			{Name: "money-conserved", Check: moneyConserved},
			{Name: "balances-match-transfers", Check: balancesMatchTransfers},
		},
		Expected: func(err error) bool {
			var insufficient *InsufficientFundsError
			return errors.As(err, &insufficient)
		},
	}
	store := func(o *chaos.Op, db *sql.DB, pool *pgxpool.Pool) accounts {
		if pool != nil {
			return pgxStore(pool, chaosNotifier{o})
		}
		return sqlStore(db, chaosNotifier{o})
	}
	op := func(name string, weight int, call func(ctx context.Context, s accounts, o *chaos.Op) error) chaos.Operation {
		c := chaos.Operation{Name: name, Weight: weight}
		if pgxStore != nil {
			c.RunPgx = func(ctx context.Context, pool *pgxpool.Pool, o *chaos.Op) error {
				return call(ctx, store(o, nil, pool), o)
			}
		} else {
			c.Run = func(ctx context.Context, db *sql.DB, o *chaos.Op) error { return call(ctx, store(o, db, nil), o) }
		}
		return c
	}
	wl.Operations = []chaos.Operation{
		op(opTransfer, 6, func(ctx context.Context, s accounts, o *chaos.Op) error {
			ids := o.Worker.State.(*chaosScope).ids
			from := ids[o.Rand.IntN(len(ids))]
			to := ids[o.Rand.IntN(len(ids))]
			for to == from {
				to = ids[o.Rand.IntN(len(ids))]
			}
			amount := 1 + int64(o.Index%100_000)
			o.Write(transferKey(from, to, amount))
			_, err := s.Transfer(ctx, from, to, amount)
			return err
		}),
		op(opGetAccount, 2, func(ctx context.Context, s accounts, o *chaos.Op) error {
			ids := o.Worker.State.(*chaosScope).ids
			id := ids[o.Rand.IntN(len(ids))]
			a, err := s.GetAccount(ctx, id)
			if err == nil {
				n := 0
				if a.ID == id {
					n = 1
				}
				o.Saw(accountKey(id), n)
			}
			return err
		}),
		op(opListAccounts, 2, func(ctx context.Context, s accounts, o *chaos.Op) error {
			ids := o.Worker.State.(*chaosScope).ids
			limit := 1 + o.Rand.IntN(chaosAccounts)
			got, err := s.ListAccounts(ctx, o.Worker.Scope, Page{Limit: limit})
			if err == nil {
				seen := map[int64]int{}
				for _, a := range got {
					seen[a.ID]++
				}
				for _, id := range ids[:limit] {
					o.Saw(accountKey(id), seen[id])
				}
			}
			return err
		}),
	}
	return wl
}

// chaosSetup opens the worker's accounts, on the run's clean pool.
func chaosSetup(ctx context.Context, db *sql.DB, w *chaos.Worker) error {
	s := NewStore(db, nil)
	sc := &chaosScope{}
	for range chaosAccounts {
		a, err := s.CreateAccount(ctx, w.Scope, chaosOpening)
		if err != nil {
			return err
		}
		sc.ids = append(sc.ids, a.ID)
		w.Wrote(accountKey(a.ID))
	}
	w.State = sc
	return nil
}

// moneyConserved: the worker's accounts hold together what they opened with.
func moneyConserved(ctx context.Context, db *sql.DB, w *chaos.Worker) ([]string, error) {
	var n int
	var sum int64
	if err := db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(balance), 0) FROM accounts WHERE owner = $1`, w.Scope).Scan(&n, &sum); err != nil {
		return nil, err
	}
	if want := int64(chaosAccounts * chaosOpening); n != chaosAccounts || sum != want {
		return []string{fmt.Sprintf("the %d accounts of %s hold %d in all; want %d accounts holding %d (money created or destroyed)", n, w.Scope, sum, chaosAccounts, want)}, nil
	}
	return nil, nil
}

// balancesMatchTransfers: each account's balance is its opening balance plus what the
// stored transfers brought in, less what they took out (both balances and the transfer row
// were written together, or none of them).
func balancesMatchTransfers(ctx context.Context, db *sql.DB, w *chaos.Worker) ([]string, error) {
	rows, err := db.QueryContext(ctx, `
SELECT a.id, a.balance,
       $2 + coalesce((SELECT sum(amount) FROM transfers WHERE to_account = a.id), 0)
          - coalesce((SELECT sum(amount) FROM transfers WHERE from_account = a.id), 0)
FROM accounts a WHERE a.owner = $1 ORDER BY a.id`, w.Scope, chaosOpening)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var id, balance, want int64
		if err := rows.Scan(&id, &balance, &want); err != nil {
			return nil, err
		}
		if balance != want {
			problems = append(problems, fmt.Sprintf("account %d has balance %d; its transfers say %d", id, balance, want))
		}
	}
	return problems, rows.Err()
}

// chaosTarget returns a fresh migrated bank database to run chaos on.
func chaosTarget(tb testing.TB) chaos.Target {
	tb.Helper()
	db := pgtest.New(tb, pgtest.WithMigration("bank-v1", Migrate))
	return chaos.Target{DSN: db.DSN, Admin: db.Admin, AppName: db.AppName}
}

// TestChaos runs the bank's stores under chaos on real PostgreSQL: no violation on correct
// code, and faults fired.
func TestChaos(t *testing.T) {
	tests := []struct {
		name string
		wl   *chaos.Workload
	}{
		{"database-sql", chaosWorkload("bank", theStore, nil)},
		{"pgx", chaosWorkload("bank-pgx", nil, thePgxStore)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			t.Cleanup(cancel)
			const seed = 7
			cfg := chaos.Config{Seed: seed, Workers: 4, Ops: 400, FaultRate: 0.05, NoGoroutineCheck: true, MaxWrites: 64, Panics: !tt.wl.Pgx}
			res, err := chaos.Run(ctx, tt.wl, cfg, chaosTarget(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("seed %d: ops %d errors %d faults %d acked %d ambiguous %d in %s", seed, res.Operations, res.Errors, res.Faults, res.Acked, res.Ambiguous, res.Duration)
			for _, v := range res.Violations {
				t.Errorf("violation: %s\nreplay: go test -run 'TestChaos/%s' ./examples/bank (seed %d)\ntrace:\n%s\nattribution:\n%s", v, tt.name, seed, v.Trace, v.Attribution)
			}
			if res.Faults == 0 || res.Acked == 0 {
				t.Errorf("%d faults fired, %d writes acknowledged in %d operations: the run tested nothing", res.Faults, res.Acked, res.Operations)
			}
		})
	}
}

// TestChaosPlanted shows chaos catching each planted copy of the bank's stores: a run on
// the planted store must end with a violation of one of the invariants the bug breaks. A
// run that ends without one (a finding of another kind can stop a worker first) is
// followed by one on the next seed, on a fresh database, until the test's deadline is near.
func TestChaosPlanted(t *testing.T) {
	tests := []struct {
		name string
		wl   *chaos.Workload
		want []string
	}{
		{"no-deferred-rollback", chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return noDeferredRollback{NewStore(db, n)} }, nil),
			[]string{"pool", "server"}},
		{"rows-left-open", chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return rowsLeftOpen{NewStore(db, n)} }, nil),
			[]string{"pool"}},
		{"notifies-in-tx", chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return notifiesInTx{NewStore(db, n)} }, nil),
			[]string{"long-transaction"}},
		{"swallowed-error", chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return swallowedError{NewStore(db, n)} }, nil),
			[]string{"ledger", "read"}},
		{"pgx/panic-no-deferred-rollback", chaosWorkload("bank-pgx", nil, func(p *pgxpool.Pool, n Notifier) accounts { return pgxPanicNoRollback{NewPgxStore(p, n)} }),
			[]string{"pool", "panic"}},
		{"pgx/rows-left-open", chaosWorkload("bank-pgx", nil, func(p *pgxpool.Pool, n Notifier) accounts { return pgxRowsLeftOpen{NewPgxStore(p, n)} }),
			[]string{"pool"}},
		{"pgx/notifies-in-tx", chaosWorkload("bank-pgx", nil, func(p *pgxpool.Pool, n Notifier) accounts { return pgxNotifiesInTx{NewPgxStore(p, n)} }),
			[]string{"long-transaction"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := untilDeadline(t)
			var ops, fired int64
			for seed := int64(11); ctx.Err() == nil; seed++ {
				cfg := chaos.Config{Seed: seed, Workers: 2, Ops: 200, FaultRate: 0.1, NoGoroutineCheck: true, MaxWrites: 32, Panics: !tt.wl.Pgx}
				res, err := chaos.Run(ctx, tt.wl, cfg, chaosTarget(t))
				if err != nil {
					t.Fatal(err)
				}
				ops, fired = ops+res.Operations, fired+res.Faults
				for _, v := range res.Violations {
					t.Logf("seed %d: violation: %s", seed, v)
					for _, inv := range tt.want {
						if v.Invariant == inv && !res.Interrupted {
							return
						}
					}
				}
			}
			t.Errorf("planted %s: no %v violation in %d operations (%d faults) before the test's deadline", tt.name, tt.want, ops, fired)
		})
	}
}

// untilDeadline returns a context that ends shortly before the test's deadline (or in five
// minutes without one), for a test that tries until it sees what it wants.
func untilDeadline(t *testing.T) context.Context {
	t.Helper()
	d, ok := t.Deadline()
	if !ok {
		d = time.Now().Add(5 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), d.Add(-15*time.Second))
	t.Cleanup(cancel)
	return ctx
}

// TestChaosShrink shrinks a planted store's violation to one worker's short stream, and the
// shrunk configuration replays it.
func TestChaosShrink(t *testing.T) {
	ctx := untilDeadline(t)
	wl := chaosWorkload("bank", func(db *sql.DB, n Notifier) accounts { return noDeferredRollback{NewStore(db, n)} }, nil)
	cfg := chaos.Config{Seed: 11, Workers: 2, Ops: 200, FaultRate: 0.1, Panics: true, NoGoroutineCheck: true, CheckTimeout: 500 * time.Millisecond}
	res, err := chaos.Run(ctx, wl, cfg, chaosTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) == 0 {
		t.Fatalf("seed %d: the planted store gave no violation in %d operations", cfg.Seed, res.Operations)
	}
	newTarget := func(context.Context) (chaos.Target, func(), error) { return chaosTarget(t), func() {}, nil }
	var log strings.Builder
	deadline, _ := ctx.Deadline()
	sh, err := chaos.Shrink(ctx, wl, cfg, res, newTarget, time.Until(deadline), 20, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shrunk in %s, %d attempts: %s\n%s", sh.Took, sh.Attempts, chaos.Describe(sh.Config), log.String())
	if sh.Err != nil {
		t.Errorf("shrink: %v", sh.Err)
	}
	if !sh.Reduced || sh.Config.Workers != 1 {
		t.Errorf("shrunk to %s; want one worker", chaos.Describe(sh.Config))
	}
	again, err := chaos.Run(ctx, wl, sh.Config, chaosTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Violations) == 0 || again.Violations[0].Invariant != sh.Violation.Invariant {
		t.Errorf("the shrunk configuration %s gave %v; want a %s violation again", chaos.Describe(sh.Config), again.Violations, sh.Violation.Invariant)
	}
}

// BenchmarkChaos measures the bank's chaos throughput (operations per second over all
// workers), on each store: with faults and every check on ("checked"), next to the same
// workload with every check and no fault ("checks-only") and with neither ("baseline"),
// paired in one run on the same server. One b.N is one operation.
func BenchmarkChaos(b *testing.B) {
	stores := []struct {
		name string
		wl   *chaos.Workload
	}{
		{"database-sql", chaosWorkload("bank", theStore, nil)},
		{"pgx", chaosWorkload("bank-pgx", nil, thePgxStore)},
	}
	for _, st := range stores {
		for _, mode := range []string{"baseline", "checks-only", "checked"} {
			b.Run(st.name+"/workers=8/"+mode, func(b *testing.B) {
				tg := chaosTarget(b)
				cfg := chaos.Config{Seed: 1, Workers: 8, Ops: max(b.N, 8), FaultRate: 0.03, NoGoroutineCheck: true}
				switch mode {
				case "baseline":
					cfg.NoChecks = true
				case "checks-only":
					cfg.FaultRate = 0
				}
				b.ResetTimer()
				res, err := chaos.Run(context.Background(), st.wl, cfg, tg)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Violations) > 0 {
					b.Fatalf("violation in a clean run: %s", res.Violations[0])
				}
				b.ReportMetric(res.OpsPerSec(), "ops/s")
			})
		}
	}
}
