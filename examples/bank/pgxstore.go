package bank

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what the PgxStore's queries run on: a *pgxpool.Pool, a pgx.Tx or
// a *pgx.Conn, as sqlc generates it for pgx.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PgxStore is Store on pgx directly: the same operations over a
// *pgxpool.Pool, its transactions pgx.Tx. It is safe for concurrent use.
type PgxStore struct {
	pool     *pgxpool.Pool
	notifier Notifier
	log      *slog.Logger
}

// NewPgxStore returns a PgxStore over pool. notifier, if not nil, is told of
// each committed transfer; its failures are logged, since the transfer
// stands.
func NewPgxStore(pool *pgxpool.Pool, notifier Notifier) *PgxStore {
	return &PgxStore{pool: pool, notifier: notifier, log: slog.Default()}
}

// CreateAccount opens an account for owner with an opening balance (one
// autocommit statement).
func (s *PgxStore) CreateAccount(ctx context.Context, owner string, balance int64) (Account, error) {
	a := Account{Owner: owner, Balance: balance}
	err := s.pool.QueryRow(ctx,
		`INSERT INTO accounts (owner, balance) VALUES ($1, $2) RETURNING id`, owner, balance).Scan(&a.ID)
	if err != nil {
		return Account{}, fmt.Errorf("bank: create account for %q: %w", owner, err)
	}
	return a, nil
}

// GetAccount returns the account id, or ErrAccountNotFound.
func (s *PgxStore) GetAccount(ctx context.Context, id int64) (Account, error) {
	var a Account
	err := s.pool.QueryRow(ctx,
		`SELECT id, owner, balance FROM accounts WHERE id = $1`, id).Scan(&a.ID, &a.Owner, &a.Balance)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, fmt.Errorf("bank: get account %d: %w", id, ErrAccountNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("bank: get account %d: %w", id, err)
	}
	return a, nil
}

// GetAccounts returns the accounts ids, in that order, or ErrAccountNotFound
// for the first that does not exist. The lookups run on one connection
// acquired from the pool for the whole batch, released at the end.
func (s *PgxStore) GetAccounts(ctx context.Context, ids []int64) ([]Account, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("bank: get accounts: acquire: %w", err)
	}
	defer conn.Release()
	out := make([]Account, 0, len(ids))
	for _, id := range ids {
		var a Account
		err := conn.QueryRow(ctx,
			`SELECT id, owner, balance FROM accounts WHERE id = $1`, id).Scan(&a.ID, &a.Owner, &a.Balance)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("bank: get accounts: account %d: %w", id, ErrAccountNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("bank: get accounts: account %d: %w", id, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ListAccounts returns a page of owner's accounts in id order.
func (s *PgxStore) ListAccounts(ctx context.Context, owner string, p Page) ([]Account, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT id, owner, balance FROM accounts WHERE owner = $1 AND id > $2 ORDER BY id LIMIT $3`,
		owner, p.AfterID, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) {
		var a Account
		err := r.Scan(&a.ID, &a.Owner, &a.Balance)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
	}
	return out, nil
}

// Transfer moves amount cents from one account to another in one
// transaction, as Store.Transfer does.
func (s *PgxStore) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	if amount <= 0 || from == to {
		return Transfer{}, fmt.Errorf("bank: transfer %d from %d to %d: %w", amount, from, to, ErrInvalidTransfer)
	}
	ctx, cancel := context.WithTimeout(ctx, transferDeadline)
	defer cancel()
	t := Transfer{From: from, To: to, Amount: amount}
	wrap := func(err error) error {
		return fmt.Errorf("bank: transfer %d from %d to %d: %w", amount, from, to, err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Transfer{}, wrap(fmt.Errorf("begin: %w", err))
	}
	// The explicit rollbacks below end the transaction as soon as a step
	// fails; this one is for a panic.
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit or Rollback
	if _, err := tx.Exec(ctx, transferLockTimeout); err != nil {
		_ = tx.Rollback(ctx) //sessionsafe:equivalent drop-rollback-on-error the deferred Rollback ends the transaction at this very return all the same
		return Transfer{}, wrap(fmt.Errorf("set lock timeout: %w", err))
	}
	if err := moveMoneyPgx(ctx, tx, from, to, amount); err != nil {
		_ = tx.Rollback(ctx) //sessionsafe:equivalent drop-rollback-on-error the deferred Rollback ends the transaction at this very return all the same
		return Transfer{}, wrap(err)
	}
	err = tx.QueryRow(ctx,
		`INSERT INTO transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id`,
		from, to, amount).Scan(&t.ID)
	if err != nil {
		_ = tx.Rollback(ctx) //sessionsafe:equivalent drop-rollback-on-error the deferred Rollback ends the transaction at this very return all the same
		return Transfer{}, wrap(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Transfer{}, wrap(fmt.Errorf("commit: %w", err))
	}
	notify(ctx, s.notifier, s.log, t)
	return t, nil
}

// moveMoneyPgx is moveMoney on a DBTX: both balances, the lower account id
// first.
func moveMoneyPgx(ctx context.Context, q DBTX, from, to, amount int64) error {
	first, second := from, to
	if second < first {
		first, second = second, first
	}
	for _, id := range []int64{first, second} {
		delta := amount
		if id == from {
			delta = -amount
		}
		var balance int64
		err := q.QueryRow(ctx,
			`UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance`, id, delta).Scan(&balance)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("account %d: %w", id, ErrAccountNotFound)
		}
		if err != nil {
			return fmt.Errorf("update account %d: %w", id, err)
		}
		if balance < 0 {
			return &InsufficientFundsError{Account: id, Balance: balance + amount, Amount: amount}
		}
	}
	return nil
}
