package bank

import (
	"database/sql"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// parallelCases are the cases the parallel test runs of each operation: the
// clean case, and a plain error and a panic at every step where they apply —
// the planted bugs' cases among correct ones. (Not the cancels: a store that
// returns its rollback's error instead of the first, swallowed-error,
// reports a cancelled transaction as a success or not depending on whether
// database/sql's own rollback on the cancelled context wins the race with
// it — a verdict that varies one case at a time too.)
var (
	parallelCases = regexp.MustCompile(`^step-0-clean/clean$|/(error|panic)$`)
	// pgx code meets real SQLSTATE errors and cancels (no injected plain error or panic)
	parallelPgxCases = regexp.MustCompile(`^step-0-clean/clean$|/(pgerr=40001|cancel)$`)
)

// TestParallelVerdicts runs the planted stores' operations one case at a
// time and four at a time — through database/sql on sqlmock and on
// PostgreSQL (pgx stdlib), and through pgx itself on PostgreSQL — and
// requires the same verdict for every case: a planted leak is caught in the
// same cases either way, and never blamed on a case running beside it.
func TestParallelVerdicts(t *testing.T) {
	t.Parallel() // most of its time is checks waiting out their deadlines on planted leaks: it waits beside the other planted tests
	sqlStores := []struct {
		name  string
		store newAccounts
		op    string
		cases *regexp.Regexp
	}{
		{"no-deferred-rollback", func(db *sql.DB, n Notifier) accounts { return noDeferredRollback{NewStore(db, n)} }, opTransfer, parallelCases},
		{"rows-left-open", func(db *sql.DB, n Notifier) accounts { return rowsLeftOpen{NewStore(db, n)} }, opListAccounts, parallelCases},
		{"notifies-in-tx", func(db *sql.DB, n Notifier) accounts { return notifiesInTx{NewStore(db, n)} }, opTransfer, parallelCases},
		{"swallowed-error", func(db *sql.DB, n Notifier) accounts { return swallowedError{NewStore(db, n)} }, opTransfer, parallelCases},
	}
	pgxStores := []struct {
		name  string
		store newPgxAccounts
		op    string
	}{
		{"pgx-panic-no-deferred-rollback", func(p *pgxpool.Pool, n Notifier) accounts { return pgxPanicNoRollback{NewPgxStore(p, n)} }, opTransfer},
		{"pgx-rows-left-open", func(p *pgxpool.Pool, n Notifier) accounts { return pgxRowsLeftOpen{NewPgxStore(p, n)} }, opListAccounts},
		{"pgx-notifies-in-tx", func(p *pgxpool.Pool, n Notifier) accounts { return pgxNotifiesInTx{NewPgxStore(p, n)} }, opTransfer},
	}
	pick := func(t *testing.T, ops []scenarios.Operation, name string) scenarios.Operation {
		t.Helper()
		op, ok := lookup(ops, name)
		if !ok {
			t.Fatalf("no operation %s in the catalog", name)
		}
		return op
	}
	type planted struct {
		name  string
		op    func(t *testing.T) scenarios.Operation
		cases *regexp.Regexp
	}
	var viaSQL, viaPgx []planted
	for _, s := range sqlStores {
		viaSQL = append(viaSQL, planted{s.name, func(t *testing.T) scenarios.Operation { return pick(t, catalog(s.store), s.op) }, s.cases})
	}
	for _, s := range pgxStores {
		viaPgx = append(viaPgx, planted{s.name, func(t *testing.T) scenarios.Operation { return pick(t, pgxCatalog(s.store), s.op) }, parallelPgxCases})
	}
	backends := []struct {
		name   string
		cfg    func(t *testing.T) scenarios.Config
		stores []planted
	}{
		{"sqlmock", func(*testing.T) scenarios.Config {
			return scenarios.Config{Backend: scenarios.Sqlmock, Golden: os.DirFS("testdata")}
		}, viaSQL},
		{"postgres", func(t *testing.T) scenarios.Config { return pgConfig(t, "pgx") }, viaSQL},
		{"pgx", pgConfigPgx, viaPgx},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, s := range b.stores {
				t.Run(s.name, func(t *testing.T) {
					t.Parallel() // a database of its own; mostly waiting, as its parent
					op := s.op(t)
					// one at a time, then four at a time, side by side: each on a database of its own
					cfgs := []scenarios.Config{b.cfg(t), b.cfg(t)}
					for i, parallel := range []int{1, 4} {
						cfgs[i].Parallel = parallel
						cfgs[i].Only = func(c scenarios.Case) bool {
							return s.cases.MatchString(strings.TrimPrefix(c.Name(), c.Operation+"/"))
						}
					}
					reps := make([]scenarios.Report, 2)
					errs := testkit.FanOut(2, func(i int) error {
						var err error
						reps[i], err = scenarios.Run(t.Context(), cfgs[i], op)
						return err
					})
					if err := errors.Join(errs...); err != nil {
						t.Fatal(err)
					}
					seq, par := reps[0], reps[1]
					for _, d := range seq.VerdictDiff(par) {
						t.Errorf("one at a time, then four at a time: %s", d)
					}
					if !seq.Failed() {
						t.Fatalf("no case of %d failed; want the planted bug caught", len(seq.Results))
					}
				})
			}
		})
	}
}
