// Package sites holds one or more sites of every mutate operator, on database/sql (sql.go)
// and on pgx (pgx.go), and look-alikes that must never be sites (lookalike.go).
package sites

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

const sqlBalance = `SELECT balance FROM accounts WHERE id = $1 FOR UPDATE`

const sqlMove = `UPDATE accounts SET balance = balance + $1 WHERE id = $2`

// Store is an account store on database/sql.
type Store struct {
	db     *sql.DB
	notify func(id string)
}

// Transfer moves amount between two accounts in one transaction.
func (s *Store) Transfer(ctx context.Context, from, to string, amount int64) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '1s'"); err != nil {
		return fmt.Errorf("lock timeout: %w", err)
	}
	var balance int64
	if err := tx.QueryRowContext(ctx, sqlBalance, from).Scan(&balance); err != nil {
		return fmt.Errorf("balance: %w", err)
	}
	if _, err := tx.ExecContext(ctx, sqlMove, -amount, from); err != nil {
		return fmt.Errorf("debit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.notify(from)
	return nil
}

// Deposit adds amount to an account, rolling back by hand on failure.
func (s *Store) Deposit(ctx context.Context, id string, amount int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, sqlMove, amount, id); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Balances returns every account's balance.
func (s *Store) Balances(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, balance FROM accounts`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var b int64
		if err := rows.Scan(&id, &b); err != nil {
			return nil, err
		}
		out[id] = b
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Touch runs a prepared statement on one pinned connection.
func (s *Store) Touch(ctx context.Context, id string) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(ctx, `UPDATE accounts SET touched_at = now() WHERE id = $1`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	_, err = stmt.ExecContext(ctx, id)
	return err
}

// DBTX is what *sql.DB, *sql.Tx and *sql.Conn have in common: the sqlc querier.
type DBTX interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func credit(ctx context.Context, q DBTX, id string, amount int64) error {
	_, err := q.ExecContext(ctx, sqlMove, amount, id)
	return err
}

// Credit credits an account through the querier, in a transaction.
func (s *Store) Credit(ctx context.Context, id string, amount int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := credit(ctx, tx, id, amount); err != nil {
		return err
	}
	err = tx.Commit()
	if err != nil {
		return err
	}
	s.notify(id)
	return nil
}
