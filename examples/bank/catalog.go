package bank

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/cli"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// Catalog is the bank as the sessionsafe command line runs it (cli.Main): every method of
// the database/sql [Store], a refused transfer, and the same calls on the [PgxStore]
// (named with a "Pgx" prefix, Postgres only), on the schema [Migrate] creates, with the
// golden traces of testdata/ for sqlmock, and the database/sql store's chaos workload
// (money conserved, no acknowledged transfer lost).
func Catalog() cli.Catalog {
	ops := catalog(theStore)
	for _, op := range pgxCatalog(thePgxStore) {
		op.Name = "Pgx" + op.Name
		ops = append(ops, op)
	}
	return cli.Catalog{Name: "bank", Operations: ops, Golden: goldenFS(), Migration: migration, Migrate: Migrate,
		Chaos: chaosWorkload("bank", theStore, nil)}
}

// PgxCatalog is the bank on its [PgxStore] alone, as the command line runs it (cli.Main,
// -catalog bank-pgx): the calls of [Catalog] on the pgx store (Postgres only: there are no
// golden traces for sqlmock), on the same schema, with the pgx store's chaos workload
// (money conserved, no acknowledged transfer lost).
func PgxCatalog() cli.Catalog {
	return cli.Catalog{Name: "bank-pgx", Operations: pgxCatalog(thePgxStore), Migration: migration, Migrate: Migrate,
		Chaos: chaosWorkload("bank-pgx", nil, thePgxStore)}
}

// migration names the schema Migrate applies; change it when schema.sql changes.
const migration = "bank-v1"

//go:embed testdata/*.trace
var golden embed.FS

// goldenFS is the golden traces of the database/sql operations, one <operation>.trace each.
func goldenFS() fs.FS {
	sub, err := fs.Sub(golden, "testdata")
	if err != nil { // cannot happen: the directory is embedded
		panic(err)
	}
	return sub
}

// accounts is what the catalog calls: the Store, or a planted copy of it.
type accounts interface {
	CreateAccount(ctx context.Context, owner string, balance int64) (Account, error)
	GetAccount(ctx context.Context, id int64) (Account, error)
	GetAccounts(ctx context.Context, ids []int64) ([]Account, error)
	ListAccounts(ctx context.Context, owner string, p Page) ([]Account, error)
	Transfer(ctx context.Context, from, to, amount int64) (Transfer, error)
}

// newAccounts builds the store under test on a case's instrumented pool,
// with the notifier the catalog gives it.
type newAccounts func(db *sql.DB, n Notifier) accounts

// theStore is the Store itself.
func theStore(db *sql.DB, n Notifier) accounts { return NewStore(db, n) }

// fixture is one case's fresh state: a new owner with three accounts in id
// order holding 100.00, 50.00 and 0.00.
type fixture struct {
	Owner           string
	Rich, Mid, Poor int64
}

// setupAccounts creates the fixture's owner and accounts in one statement,
// on the plain pool. The owner is numbered after the accounts already there,
// so that a fresh database gives the same fixture — and the same golden
// trace — every time; the count and the insert run in one transaction under
// a lock of their own, so that two cases set up side by side (a parallel
// matrix) never share an owner. On sqlmock (db nil) the fixture is the one
// the golden traces were recorded with: the first on a fresh database.
func setupAccounts(ctx context.Context, db *sql.DB) (scenarios.Fixture, error) {
	if db == nil {
		return fixture{Owner: "owner-1", Rich: 1, Mid: 2, Poor: 3}, nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("setup accounts: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('bank setup accounts'))`); err != nil {
		return nil, fmt.Errorf("setup accounts: lock: %w", err)
	}
	var existing int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&existing); err != nil {
		return nil, fmt.Errorf("setup accounts: count: %w", err)
	}
	fx := fixture{Owner: fmt.Sprintf("owner-%d", existing+1)}
	rows, err := tx.QueryContext(ctx, `
WITH a AS (
  INSERT INTO accounts (owner, balance)
  SELECT $1, v.balance FROM (VALUES (1, 10000), (2, 5000), (3, 0)) AS v(n, balance) ORDER BY v.n
  RETURNING id
)
SELECT id FROM a ORDER BY id`, fx.Owner)
	if err != nil {
		return nil, fmt.Errorf("setup accounts: %w", err)
	}
	defer rows.Close()
	ids := []*int64{&fx.Rich, &fx.Mid, &fx.Poor}
	n := 0
	for rows.Next() {
		if n == len(ids) {
			return nil, errors.New("setup accounts: more than three accounts")
		}
		if err := rows.Scan(ids[n]); err != nil {
			return nil, fmt.Errorf("setup accounts: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("setup accounts: %w", err)
	}
	if n != len(ids) {
		return nil, fmt.Errorf("setup accounts: got %d accounts; want %d", n, len(ids))
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("setup accounts: commit: %w", err)
	}
	return fx, nil
}

// accountState reads back the fixture owner's accounts, normalised: each
// account (numbered in id order) with its balance, the amounts it paid and
// the amounts it received.
func accountState(ctx context.Context, db *sql.DB, f scenarios.Fixture) (string, error) {
	fx := f.(fixture)
	rows, err := db.QueryContext(ctx, `
SELECT 'account ' || (row_number() OVER (ORDER BY a.id))::text || ' balance=' || a.balance::text
       || ' paid=' || coalesce((SELECT string_agg(t.amount::text, ',' ORDER BY t.id) FROM transfers t WHERE t.from_account = a.id), '-')
       || ' received=' || coalesce((SELECT string_agg(t.amount::text, ',' ORDER BY t.id) FROM transfers t WHERE t.to_account = a.id), '-')
FROM accounts a WHERE a.owner = $1 ORDER BY a.id`, fx.Owner)
	if err != nil {
		return "", fmt.Errorf("read account state: %w", err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", fmt.Errorf("read account state: %w", err)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read account state: %w", err)
	}
	return b.String(), nil
}

// auditLog is the catalog's Notifier: a call to something outside the
// database, marked as such so that the runner reports a transaction held
// across it.
type auditLog struct{}

// TransferCommitted records nothing: what matters is where it is called from.
func (auditLog) TransferCommitted(ctx context.Context, t Transfer) error {
	return external(ctx, "audit log", func(context.Context) error { return nil })
}

// external marks fn as a call outside the database: in a matrix case it
// runs through the case's leakcheck.Tracker, so that a transaction held
// across fn is a long-transaction finding.
func external(ctx context.Context, name string, fn func(context.Context) error) error {
	return scenarios.External(ctx, name, fn)
}

// Operation names of the bank catalog.
const (
	opCreateAccount        = "CreateAccount"
	opGetAccount           = "GetAccount"
	opGetAccounts          = "GetAccounts"
	opListAccounts         = "ListAccounts"
	opTransfer             = "Transfer"
	opTransferInsufficient = "TransferInsufficient"
)

// bankOp builds one catalog operation from the call it makes.
func bankOp(name string, store newAccounts, writes bool, call func(ctx context.Context, s accounts, fx fixture) error) scenarios.Operation {
	op := scenarios.Operation{
		Name:  name,
		Setup: setupAccounts,
		Run: func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) error {
			return call(ctx, store(db, auditLog{}), fx.(fixture))
		},
	}
	if writes {
		op.State = accountState
	}
	return op
}

// catalog returns the bank's operations on the store store builds: every
// method of the store, and a transfer refused for insufficient funds (a
// success for the matrix when the refusal reaches the caller).
func catalog(store newAccounts) []scenarios.Operation {
	return []scenarios.Operation{
		bankOp(opCreateAccount, store, true, func(ctx context.Context, s accounts, fx fixture) error {
			_, err := s.CreateAccount(ctx, fx.Owner, 700)
			return err
		}),
		bankOp(opGetAccount, store, false, func(ctx context.Context, s accounts, fx fixture) error {
			a, err := s.GetAccount(ctx, fx.Mid)
			if err == nil && (a.Owner != fx.Owner || a.Balance != 5000) {
				return fmt.Errorf("get account: got %+v; want owner %s, balance 5000", a, fx.Owner)
			}
			return err
		}),
		bankOp(opGetAccounts, store, false, func(ctx context.Context, s accounts, fx fixture) error {
			got, err := s.GetAccounts(ctx, []int64{fx.Rich, fx.Mid, fx.Poor})
			if err != nil {
				return err
			}
			want := []Account{{ID: fx.Rich, Owner: fx.Owner, Balance: 10000}, {ID: fx.Mid, Owner: fx.Owner, Balance: 5000}, {ID: fx.Poor, Owner: fx.Owner, Balance: 0}}
			if !slices.Equal(got, want) {
				return fmt.Errorf("get accounts: got %+v; want %+v", got, want)
			}
			return nil
		}),
		bankOp(opListAccounts, store, false, func(ctx context.Context, s accounts, fx fixture) error {
			// two pages of two: all three accounts
			var all []Account
			p := Page{Limit: 2}
			for {
				page, err := s.ListAccounts(ctx, fx.Owner, p)
				if err != nil {
					return err
				}
				all = append(all, page...)
				if len(page) < p.Limit {
					break
				}
				p.AfterID = page[len(page)-1].ID
			}
			if len(all) != 3 {
				return fmt.Errorf("list accounts: got %d accounts; want 3", len(all))
			}
			return nil
		}),
		// From the higher id to the lower: the rows are locked in the
		// other order.
		bankOp(opTransfer, store, true, func(ctx context.Context, s accounts, fx fixture) error {
			_, err := s.Transfer(ctx, fx.Mid, fx.Rich, 1234)
			return err
		}),
		// Refused: it changes nothing, so the runner (which wants a State
		// to show the write) checks the error and the leaks only.
		bankOp(opTransferInsufficient, store, false, func(ctx context.Context, s accounts, fx fixture) error {
			_, err := s.Transfer(ctx, fx.Poor, fx.Rich, 1)
			return refused(err)
		}),
	}
}

// refused returns nil for the error of a transfer from an empty account
// (an *InsufficientFundsError), and an error for anything else: the
// transfer's own failure, or a success.
func refused(err error) error {
	var ife *InsufficientFundsError
	switch {
	case errors.As(err, &ife):
		return nil
	case err == nil:
		return errors.New("transfer from an empty account: got success; want an *InsufficientFundsError")
	}
	return err
}

// newPgxAccounts builds the pgx store under test on a case's instrumented
// pool.
type newPgxAccounts func(pool *pgxpool.Pool, n Notifier) accounts

// thePgxStore is the PgxStore itself.
func thePgxStore(pool *pgxpool.Pool, n Notifier) accounts { return NewPgxStore(pool, n) }

// pgxCatalog is the bank catalog with each operation run on the pgx store
// store builds (RunPgx instead of Run): same names, fixtures and states.
func pgxCatalog(store newPgxAccounts) []scenarios.Operation { return onPgx(catalog, store) }

// onPgx returns the operations of a database/sql catalog (catalog or
// probeCatalog), each run on the pgx store that store builds instead.
func onPgx(ofStore func(newAccounts) []scenarios.Operation, store newPgxAccounts) []scenarios.Operation {
	ops := ofStore(nil)
	for i := range ops {
		name := ops[i].Name
		ops[i].Run = nil
		ops[i].RunPgx = func(ctx context.Context, pool *pgxpool.Pool, fx scenarios.Fixture) error {
			// the database/sql catalog's call, on the pgx store
			on := func(_ *sql.DB, n Notifier) accounts { return store(pool, n) }
			for _, op := range ofStore(on) {
				if op.Name == name {
					return op.Run(ctx, nil, fx)
				}
			}
			return fmt.Errorf("pgx catalog: no operation %s", name)
		}
	}
	return ops
}
