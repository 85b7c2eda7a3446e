package sites

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PgxStore is the account store on pgx.
type PgxStore struct {
	pool *pgxpool.Pool
}

// Transfer moves amount between two accounts in one transaction.
func (s *PgxStore) Transfer(ctx context.Context, from, to string, amount int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE", from); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sqlMove, amount, to); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

// Names lists the accounts on one acquired connection.
func (s *PgxStore) Names(ctx context.Context) ([]string, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, "SELECT id FROM accounts")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	if rows.Err() != nil {
		return nil, rows.Err()
	}
	return out, nil
}

// Audit runs on a single pgx connection of its own.
func Audit(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SET LOCAL statement_timeout = 1000")
	return err
}
