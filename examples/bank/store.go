package bank

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Account is one account and its balance, in cents.
type Account struct {
	ID      int64
	Owner   string
	Balance int64
}

// Transfer is a committed movement of Amount cents from one account to
// another.
type Transfer struct {
	ID     int64
	From   int64
	To     int64
	Amount int64
}

// Page selects a page of a list: the rows after the id AfterID (0: from the
// start), at most Limit of them.
type Page struct {
	AfterID int64
	Limit   int
}

// ErrAccountNotFound is returned for an account id that does not exist.
var ErrAccountNotFound = errors.New("bank: account not found")

// ErrInvalidTransfer is returned for a transfer that can never succeed: an
// amount that is not positive, or an account paying itself.
var ErrInvalidTransfer = errors.New("bank: invalid transfer")

// InsufficientFundsError is returned by Transfer when the transfer would
// leave the paying account with a negative balance; nothing was written.
type InsufficientFundsError struct {
	Account int64 // the paying account
	Balance int64 // its balance before the transfer
	Amount  int64 // the amount asked for
}

// Error says which account lacks how much.
func (e *InsufficientFundsError) Error() string {
	return fmt.Sprintf("bank: insufficient funds: account %d has %d, transfer needs %d", e.Account, e.Balance, e.Amount)
}

// transferDeadline bounds a whole transfer, commit included: a transfer
// stuck behind a lock fails rather than holding the caller's request.
const transferDeadline = 30 * time.Second

// transferLockTimeout is the longest a transfer waits for a row lock
// (SET LOCAL: for its own transaction only, never the pooled session).
const transferLockTimeout = `SET LOCAL lock_timeout = '5s'`

// Notifier is told of each transfer once it is committed: an audit log, a
// message queue, an e-mail. It is called outside any transaction.
type Notifier interface {
	TransferCommitted(ctx context.Context, t Transfer) error
}

// Store reads and writes accounts and transfers. It is safe for concurrent
// use.
type Store struct {
	db       *sql.DB
	notifier Notifier
	log      *slog.Logger
}

// NewStore returns a Store over db. notifier, if not nil, is told of each
// committed transfer; its failures are logged, since the transfer stands.
func NewStore(db *sql.DB, notifier Notifier) *Store {
	return &Store{db: db, notifier: notifier, log: slog.Default()}
}

// execTx runs fn in a transaction and commits it; on any error, or a panic
// in fn, the deferred rollback ends the transaction.
func (s *Store) execTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// CreateAccount opens an account for owner with an opening balance (one
// autocommit statement).
func (s *Store) CreateAccount(ctx context.Context, owner string, balance int64) (Account, error) {
	a := Account{Owner: owner, Balance: balance}
	err := s.db.QueryRowContext(ctx,
		`INSERT INTO accounts (owner, balance) VALUES ($1, $2) RETURNING id`, owner, balance).Scan(&a.ID)
	if err != nil {
		return Account{}, fmt.Errorf("bank: create account for %q: %w", owner, err)
	}
	return a, nil
}

// GetAccount returns the account id, or ErrAccountNotFound.
func (s *Store) GetAccount(ctx context.Context, id int64) (Account, error) {
	var a Account
	err := s.db.QueryRowContext(ctx,
		`SELECT id, owner, balance FROM accounts WHERE id = $1`, id).Scan(&a.ID, &a.Owner, &a.Balance)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("bank: get account %d: %w", id, ErrAccountNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("bank: get account %d: %w", id, err)
	}
	return a, nil
}

// GetAccounts returns the accounts ids, in that order, or ErrAccountNotFound
// for the first that does not exist. The lookup is prepared once on the
// pool and run for each id.
func (s *Store) GetAccounts(ctx context.Context, ids []int64) ([]Account, error) {
	stmt, err := s.db.PrepareContext(ctx, `SELECT id, owner, balance FROM accounts WHERE id = $1`)
	if err != nil {
		return nil, fmt.Errorf("bank: get accounts: prepare: %w", err)
	}
	defer stmt.Close()
	out := make([]Account, 0, len(ids))
	for _, id := range ids {
		var a Account
		err := stmt.QueryRowContext(ctx, id).Scan(&a.ID, &a.Owner, &a.Balance)
		if errors.Is(err, sql.ErrNoRows) {
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
func (s *Store) ListAccounts(ctx context.Context, owner string, p Page) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, owner, balance FROM accounts WHERE owner = $1 AND id > $2 ORDER BY id LIMIT $3`,
		owner, p.AfterID, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var a Account
		if err := rows.Scan(&a.ID, &a.Owner, &a.Balance); err != nil {
			return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
	}
	return out, nil
}

// Transfer moves amount cents from one account to another in one
// transaction: both balances change and the transfer is recorded, or
// nothing is. A transfer that would leave from with a negative balance
// returns an *InsufficientFundsError. Once committed, the Notifier is told.
func (s *Store) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	if amount <= 0 || from == to {
		return Transfer{}, fmt.Errorf("bank: transfer %d from %d to %d: %w", amount, from, to, ErrInvalidTransfer)
	}
	ctx, cancel := context.WithTimeout(ctx, transferDeadline)
	defer cancel()
	t := Transfer{From: from, To: to, Amount: amount}
	err := s.execTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, transferLockTimeout); err != nil {
			return fmt.Errorf("set lock timeout: %w", err)
		}
		if err := moveMoney(ctx, tx, from, to, amount); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx,
			`INSERT INTO transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id`,
			from, to, amount).Scan(&t.ID)
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("bank: transfer %d from %d to %d: %w", amount, from, to, err)
	}
	notify(ctx, s.notifier, s.log, t)
	return t, nil
}

// notify tells notifier, if any, of the committed transfer t; a failure is
// logged, since the transfer stands.
func notify(ctx context.Context, notifier Notifier, log *slog.Logger, t Transfer) {
	if notifier == nil {
		return
	}
	if err := notifier.TransferCommitted(ctx, t); err != nil {
		log.ErrorContext(ctx, "bank: notify transfer", "transfer", t.ID, "err", err)
	}
}

// moveMoney updates both balances in tx, the lower account id first, so
// that two opposite transfers lock the rows in the same order and cannot
// deadlock.
func moveMoney(ctx context.Context, tx *sql.Tx, from, to, amount int64) error {
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
		err := tx.QueryRowContext(ctx,
			`UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance`, id, delta).Scan(&balance)
		if errors.Is(err, sql.ErrNoRows) {
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
