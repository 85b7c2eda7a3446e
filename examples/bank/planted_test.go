package bank

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// The planted stores below are copies of Store with one session bug each,
// as they are written in real code. The matrix must catch every one of them
// on both drivers.

// noDeferredRollback's transaction helper rolls back on an error but has no
// deferred rollback: a panic in fn leaves the transaction open on its
// connection.
type noDeferredRollback struct{ *Store }

func (s noDeferredRollback) execTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s noDeferredRollback) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	return transferWith(ctx, s.execTx, s.notifier, from, to, amount)
}

// swallowedError's transaction helper returns the rollback's error instead
// of fn's: a failed transfer reports success.
type swallowedError struct{ *Store }

func (s swallowedError) execTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return tx.Rollback()
	}
	return tx.Commit()
}

func (s swallowedError) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	return transferWith(ctx, s.execTx, s.notifier, from, to, amount)
}

// transferWith is Store.Transfer with another transaction helper.
func transferWith(ctx context.Context, execTx func(context.Context, func(*sql.Tx) error) error, n Notifier,
	from, to, amount int64) (Transfer, error) {
	t := Transfer{From: from, To: to, Amount: amount}
	err := execTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, transferLockTimeout); err != nil {
			return err
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
	if n != nil {
		_ = n.TransferCommitted(ctx, t)
	}
	return t, nil
}

// notifiesInTx tells the notifier inside the transaction, before the
// commit: the transaction, its locks on both accounts and its connection
// are held for as long as the notifier takes.
type notifiesInTx struct{ *Store }

func (s notifiesInTx) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	t := Transfer{From: from, To: to, Amount: amount}
	err := s.execTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, transferLockTimeout); err != nil {
			return err
		}
		if err := moveMoney(ctx, tx, from, to, amount); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx,
			`INSERT INTO transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id`,
			from, to, amount).Scan(&t.ID); err != nil {
			return err
		}
		return s.notifier.TransferCommitted(ctx, t)
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("bank: transfer %d from %d to %d: %w", amount, from, to, err)
	}
	return t, nil
}

// rowsLeftOpen's list asks for one row more than the page to learn whether
// another page follows, and returns as soon as the page is full without
// closing its rows: the connection stays busy until the rows are collected.
type rowsLeftOpen struct{ *Store }

func (s rowsLeftOpen) ListAccounts(ctx context.Context, owner string, p Page) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, owner, balance FROM accounts WHERE owner = $1 AND id > $2 ORDER BY id LIMIT $3`,
		owner, p.AfterID, p.Limit+1)
	if err != nil {
		return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
	}
	var out []Account
	for rows.Next() {
		if len(out) == p.Limit {
			return out, nil // a next page exists
		}
		var a Account
		if err := rows.Scan(&a.ID, &a.Owner, &a.Balance); err != nil {
			return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bank: list accounts of %q: %w", owner, err)
	}
	rows.Close()
	return out, nil
}

// plantedAt is how a leak report names this file: the runner prints a
// frame as its package directory and file name, then the line.
const plantedAt = "bank/planted_test.go:"

// TestPlantedBugsCaught runs the matrix on each planted store, through both
// drivers, and requires the cases aimed at the bug to break the invariant
// it breaks; a leak must be reported at the planted code's file and line.
func TestPlantedBugsCaught(t *testing.T) {
	t.Parallel() // most of its time is checks waiting out their deadlines on planted leaks: it waits beside the other planted tests
	tests := []struct {
		name  string
		store newAccounts
		op    string
		cases string // the cases run: a regexp on "step-N-kind/fault"
		want  scenarios.Invariant
		at    bool // the finding names the planted code's file:line
	}{
		{"no-deferred-rollback/panic", func(db *sql.DB, n Notifier) accounts { return noDeferredRollback{NewStore(db, n)} },
			opTransfer, `next/panic$`, scenarios.InvPool, true},
		{"no-deferred-rollback/panic/server", func(db *sql.DB, n Notifier) accounts { return noDeferredRollback{NewStore(db, n)} },
			opTransfer, `next/panic$`, scenarios.InvServer, false},
		{"rows-left-open", func(db *sql.DB, n Notifier) accounts { return rowsLeftOpen{NewStore(db, n)} },
			opListAccounts, `^step-0-clean/clean$`, scenarios.InvPool, true},
		{"notifies-in-tx", func(db *sql.DB, n Notifier) accounts { return notifiesInTx{NewStore(db, n)} },
			opTransfer, `^step-0-clean/clean$`, scenarios.InvLongTx, true},
		{"swallowed-error", func(db *sql.DB, n Notifier) accounts { return swallowedError{NewStore(db, n)} },
			opTransfer, `query/error$`, scenarios.InvErrorSurfaced, false},
		{"swallowed-error/all-or-nothing", func(db *sql.DB, n Notifier) accounts { return swallowedError{NewStore(db, n)} },
			opTransfer, `query/error$`, scenarios.InvAllOrNothing, false},
	}
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			// Cases that plant the same bug in the same operation and cases
			// (named "<bug>/...") differ only in the invariant they look
			// for: one matrix run serves them all.
			reports := map[string]scenarios.Report{}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					key := strings.SplitN(tt.name, "/", 2)[0] + " " + tt.op + " " + tt.cases
					rep, ok := reports[key]
					if !ok {
						op, ok := lookup(catalog(tt.store), tt.op)
						if !ok {
							t.Fatalf("no operation %s in the catalog", tt.op)
						}
						cfg := pgConfig(t, driver)
						re := regexp.MustCompile(tt.cases)
						cfg.Only = func(c scenarios.Case) bool { return re.MatchString(strings.TrimPrefix(c.Name(), c.Operation+"/")) }
						var err error
						if rep, err = scenarios.Run(t.Context(), cfg, op); err != nil {
							t.Fatal(err)
						}
						reports[key] = rep
					}
					if len(rep.Results) == 0 {
						t.Fatalf("no case of %s matches %s", tt.op, tt.cases)
					}
					var caught []scenarios.Finding
					for _, f := range rep.Findings() {
						if f.Invariant == tt.want && (!tt.at || strings.Contains(f.Message, plantedAt)) {
							caught = append(caught, f)
						}
					}
					if len(caught) == 0 {
						var got []string
						for _, f := range rep.Findings() {
							got = append(got, f.Error())
						}
						t.Fatalf("%d case(s) of %s matching %s: no %q finding%s; got %d finding(s):\n%s",
							len(rep.Results), tt.op, tt.cases, tt.want, map[bool]string{true: " at " + plantedAt}[tt.at],
							len(got), strings.Join(got, "\n"))
					}
					t.Logf("caught in %d of %d case(s); the first:\n%s", len(caught), len(rep.Results), caught[0].Error())
				})
			}
		})
	}
}

// lookup returns the operation named name from ops.
func lookup(ops []scenarios.Operation, name string) (scenarios.Operation, bool) {
	for _, op := range ops {
		if op.Name == name {
			return op, true
		}
	}
	return scenarios.Operation{}, false
}
