package handlers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
)

// DBTX is the querier repositories run on: *sql.DB, *sql.Tx and *sql.Conn all
// satisfy it. Repositories never begin a transaction or take a connection.
type DBTX interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

type txMode bool

const (
	readOnly  txMode = true
	readWrite txMode = false
)

// inTx runs fn as one unit of work named op, retrying the whole unit on
// serialization failure and deadlock up to s.maxRetries times.
func (s *Service) inTx(ctx context.Context, op string, mode txMode, fn func(ctx context.Context, q DBTX) error) error {
	for attempt := 0; ; attempt++ {
		err := s.inTxOnce(ctx, op, mode, fn)
		if err == nil || attempt >= s.maxRetries || !isSerialization(err) || ctx.Err() != nil {
			return err
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "retrying unit of work",
			slog.String("operation", op), slog.Int("attempt", attempt+1), slog.Any("error", err))
	}
}

// inTxOnce is one attempt: begin, run, commit; on error, panic or cancelled
// context, roll back (and re-panic after the rollback).
func (s *Service) inTxOnce(ctx context.Context, op string, mode txMode, fn func(ctx context.Context, q DBTX) error) (err error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: bool(mode)})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		p := recover()
		if p == nil && err == nil {
			return
		}
		rbErr := tx.Rollback()
		if errors.Is(rbErr, sql.ErrTxDone) {
			rbErr = nil // already ended: by a failed commit, or by database/sql on a cancelled context
		}
		cause := err
		if p != nil {
			cause = fmt.Errorf("panic: %v", p)
		}
		level := slog.LevelWarn
		if p == nil && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict)) {
			level = slog.LevelInfo // an expected answer, not a failure
		}
		s.log.LogAttrs(ctx, level, "unit of work rolled back",
			slog.String("operation", op), slog.Any("error", cause),
			slog.Bool("rollback_failed", rbErr != nil), slog.Any("rollback_error", rbErr))
		if p != nil {
			panic(p)
		}
		if rbErr != nil {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
	}()

	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("before commit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
