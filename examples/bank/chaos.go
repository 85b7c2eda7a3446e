package bank

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/chaos"
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
