package bank

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// The planted pgx stores below are copies of PgxStore with one session bug
// each, as they are written in real code on pgx. The matrix must catch every
// one of them, at the planted line.

// pgxPlantedAt is how a report names this file.
const pgxPlantedAt = "bank/pgxplanted_test.go:"

// pgxPanicNoRollback's transaction helper has no deferred rollback, and its
// transfer panics on a failed statement (a must-style helper): the panic
// leaves the transaction open and the pool's connection acquired for good.
type pgxPanicNoRollback struct{ *PgxStore }

func (s pgxPanicNoRollback) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	t := Transfer{From: from, To: to, Amount: amount}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Transfer{}, fmt.Errorf("bank: transfer: begin: %w", err)
	}
	if err := moveMoneyPgx(ctx, tx, from, to, amount); err != nil {
		panic(fmt.Sprintf("bank: transfer: %v", err)) // no deferred rollback: the tx stays open
	}
	if err := tx.QueryRow(ctx, `INSERT INTO transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id`,
		from, to, amount).Scan(&t.ID); err != nil {
		panic(fmt.Sprintf("bank: transfer: %v", err))
	}
	if err := tx.Commit(ctx); err != nil {
		return Transfer{}, fmt.Errorf("bank: transfer: commit: %w", err)
	}
	return t, nil
}

// pgxRowsLeftOpen reads one row more than the page to know whether another
// page follows, stops at the page, and never closes the rows: pgx gives the
// connection back only when the rows are read to the end or closed.
type pgxRowsLeftOpen struct{ *PgxStore }

func (s pgxRowsLeftOpen) ListAccounts(ctx context.Context, owner string, p Page) ([]Account, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT id, owner, balance FROM accounts WHERE owner = $1 AND id > $2 ORDER BY id LIMIT $3`,
		owner, p.AfterID, p.Limit+1)
	if err != nil {
		return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
	}
	var out []Account
	for len(out) < p.Limit && rows.Next() {
		var a Account
		if err := rows.Scan(&a.ID, &a.Owner, &a.Balance); err != nil {
			return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// pgxNotifiesInTx tells the notifier inside the transaction: the
// transaction, its locks and its connection are held across the call.
type pgxNotifiesInTx struct{ *PgxStore }

func (s pgxNotifiesInTx) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	t := Transfer{From: from, To: to, Amount: amount}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := moveMoneyPgx(ctx, tx, from, to, amount); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id`,
			from, to, amount).Scan(&t.ID); err != nil {
			return err
		}
		return s.notifier.TransferCommitted(ctx, t) // not committed yet
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("bank: transfer: %w", err)
	}
	return t, nil
}

// pgxDetachedTransfer runs the transfer under a context cut off from the
// caller's ("once begun, a transfer finishes"): the caller's cancellation
// and deadline never reach its statements.
type pgxDetachedTransfer struct{ *PgxStore }

func (s pgxDetachedTransfer) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	ctx = context.WithoutCancel(ctx)
	t := Transfer{From: from, To: to, Amount: amount}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := moveMoneyPgx(ctx, tx, from, to, amount); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id`,
			from, to, amount).Scan(&t.ID)
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("bank: transfer: %w", err)
	}
	return t, nil
}

// TestPgxPlantedBugsCaught runs the matrix on each planted pgx store and
// requires the cases aimed at the bug to break the invariant it breaks, a
// leak reported at the planted code's file and line.
func TestPgxPlantedBugsCaught(t *testing.T) {
	t.Parallel() // most of its time is checks waiting out their deadlines on planted leaks: it waits beside the other planted tests
	tests := []struct {
		name  string
		store newPgxAccounts
		op    string
		cases string // the cases run: a regexp on "step-N-kind/fault"
		want  scenarios.Invariant
		at    bool // the finding names the planted code's file:line
	}{
		{"panic-no-deferred-rollback", func(p *pgxpool.Pool, n Notifier) accounts { return pgxPanicNoRollback{NewPgxStore(p, n)} },
			opTransfer, `query/pgerr=40001$`, scenarios.InvPool, true},
		{"panic-no-deferred-rollback/server", func(p *pgxpool.Pool, n Notifier) accounts { return pgxPanicNoRollback{NewPgxStore(p, n)} },
			opTransfer, `query/pgerr=40001$`, scenarios.InvServer, false},
		{"rows-left-open", func(p *pgxpool.Pool, n Notifier) accounts { return pgxRowsLeftOpen{NewPgxStore(p, n)} },
			opListAccounts, `^step-0-clean/clean$`, scenarios.InvPool, true},
		{"notifies-in-tx", func(p *pgxpool.Pool, n Notifier) accounts { return pgxNotifiesInTx{NewPgxStore(p, n)} },
			opTransfer, `^step-0-clean/clean$`, scenarios.InvLongTx, true},
		{"detached-transfer", func(p *pgxpool.Pool, n Notifier) accounts { return pgxDetachedTransfer{NewPgxStore(p, n)} },
			opTransfer, `^step-2-begin/cancel$`, scenarios.InvContext, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, ok := lookup(pgxCatalog(tt.store), tt.op)
			if !ok {
				t.Fatalf("no operation %s in the catalog", tt.op)
			}
			cfg := pgConfigPgx(t)
			re := regexp.MustCompile(tt.cases)
			cfg.Only = func(c scenarios.Case) bool { return re.MatchString(strings.TrimPrefix(c.Name(), c.Operation+"/")) }
			rep, err := scenarios.Run(t.Context(), cfg, op)
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			if len(rep.Results) == 0 {
				t.Fatalf("no case of %s matches %s", tt.op, tt.cases)
			}
			var caught []scenarios.Finding
			for _, f := range rep.Findings() {
				if f.Invariant == tt.want && (!tt.at || strings.Contains(f.Message, pgxPlantedAt)) {
					caught = append(caught, f)
				}
			}
			if len(caught) == 0 {
				var got []string
				for _, f := range rep.Findings() {
					got = append(got, f.Error())
				}
				t.Fatalf("%d case(s) of %s matching %s: no %q finding%s; got %d finding(s):\n%s",
					len(rep.Results), tt.op, tt.cases, tt.want, map[bool]string{true: " at " + pgxPlantedAt}[tt.at],
					len(got), strings.Join(got, "\n"))
			}
			t.Logf("caught in %d of %d case(s); the first:\n%s", len(caught), len(rep.Results), caught[0].Error())
		})
	}
}
