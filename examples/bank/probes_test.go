package bank

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/leakcheck"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/probes"
	"github.com/sessionsafe/sessionsafe/report"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// probeSeed is the seed of the bank's probes: fixed, so that a failure
// replays with the go test command it prints.
const probeSeed = 1

// concurrentTransfer is what each probe goroutine does with the round's
// accounts: goroutine g%3 == 0 pays 1.00 from Rich to Mid, 1 pays 1.00 from
// Mid to Rich (the same rows, the other way), 2 asks to pay 0.01 from the
// empty Poor account to Mid, which must be refused. A round of any size
// leaves every account solvent.
func concurrentTransfer(ctx context.Context, s accounts, fx fixture) error {
	g, _ := probes.Goroutine(ctx)
	switch g % 3 {
	case 0:
		_, err := s.Transfer(ctx, fx.Rich, fx.Mid, 100)
		return err
	case 1:
		_, err := s.Transfer(ctx, fx.Mid, fx.Rich, 100)
		return err
	}
	_, err := s.Transfer(ctx, fx.Poor, fx.Mid, 1)
	return refused(err)
}

// probeCatalog is the bank catalog as the probes run it: every operation,
// the transfer replaced by concurrentTransfer (the catalog's own pays 12.34
// from Mid each time: on one round's accounts, enough runs of it drain Mid,
// and their refusals would read as failures).
func probeCatalog(store newAccounts) []scenarios.Operation {
	ops := catalog(store)
	for i := range ops {
		if ops[i].Name == opTransfer {
			ops[i] = bankOp(opTransfer, store, true, concurrentTransfer)
		}
	}
	return ops
}

// pgxProbeCatalog is probeCatalog on the pgx store (RunPgx instead of Run).
func pgxProbeCatalog(store newPgxAccounts) []scenarios.Operation { return onPgx(probeCatalog, store) }

// balancesAddUp is the probes' invariant of every bank operation: the
// round's three accounts never go below zero, hold the money they opened
// with plus what they received minus what they paid, 150.00 in all, and no
// transfer from the empty account is stored.
func balancesAddUp(ctx context.Context, db *sql.DB, r probes.Round) error {
	fx := r.Fixture.(fixture)
	ids := []int64{fx.Rich, fx.Mid, fx.Poor}
	opening := []int64{10000, 5000, 0}
	var total int64
	var probs []string
	for i, id := range ids {
		var balance, in, out int64
		err := db.QueryRowContext(ctx, `SELECT a.balance,
  coalesce((SELECT sum(amount) FROM transfers WHERE to_account = a.id), 0),
  coalesce((SELECT sum(amount) FROM transfers WHERE from_account = a.id), 0)
FROM accounts a WHERE a.id = $1`, id).Scan(&balance, &in, &out)
		if err != nil {
			return fmt.Errorf("read account %d: %w", id, err)
		}
		total += balance
		if balance < 0 {
			probs = append(probs, fmt.Sprintf("account %d has a negative balance %d", id, balance))
		}
		if balance != opening[i]+in-out {
			probs = append(probs, fmt.Sprintf("account %d holds %d; its transfers say %d (opened with %d, received %d, paid %d)",
				id, balance, opening[i]+in-out, opening[i], in, out))
		}
	}
	if total != 15000 {
		probs = append(probs, fmt.Sprintf("the accounts hold %d in all; want 15000", total))
	}
	var fromPoor int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM transfers WHERE from_account = $1`, fx.Poor).Scan(&fromPoor); err != nil {
		return fmt.Errorf("read transfers: %w", err)
	}
	if fromPoor > 0 {
		probs = append(probs, fmt.Sprintf("%d transfer(s) from the empty account stored", fromPoor))
	}
	return errors.Join(asErrs(probs)...)
}

// transfersAcknowledged is concurrentTransfer's invariant: balancesAddUp,
// and every transfer between Rich and Mid that a run was told succeeded is
// stored (none is stored that no run asked for).
func transfersAcknowledged(ctx context.Context, db *sql.DB, r probes.Round) error {
	err := balancesAddUp(ctx, db, r)
	fx := r.Fixture.(fixture)
	var acked, asked int
	for _, run := range r.Runs {
		if run.Goroutine%3 != 2 {
			asked++
			if run.Err == nil {
				acked++
			}
		}
	}
	var stored int
	if qerr := db.QueryRowContext(ctx, `SELECT count(*) FROM transfers WHERE from_account IN ($1, $2) AND to_account IN ($1, $2)`,
		fx.Rich, fx.Mid).Scan(&stored); qerr != nil {
		return errors.Join(err, fmt.Errorf("read transfers: %w", qerr))
	}
	if stored < acked {
		err = errors.Join(err, fmt.Errorf("%d transfer(s) acknowledged but %d stored: an acknowledged transfer was lost", acked, stored))
	}
	if stored > asked {
		err = errors.Join(err, fmt.Errorf("%d transfer(s) stored but only %d asked for", stored, asked))
	}
	return err
}

// invariantOf returns the probes' invariant of the bank operation name.
func invariantOf(name string) func(context.Context, *sql.DB, probes.Round) error {
	if name == opTransfer {
		return transfersAcknowledged
	}
	return balancesAddUp
}

func asErrs(ss []string) []error {
	out := make([]error, len(ss))
	for i, s := range ss {
		out[i] = errors.New(s)
	}
	return out
}

// probeConfig returns a probe configuration on a fresh migrated database.
func probeConfig(t *testing.T) probes.Config {
	t.Helper()
	db := pgtest.New(t, pgtest.WithMigration("bank-v1", Migrate))
	return probes.Config{DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName, Seed: probeSeed}
}

// runProbes runs both probes on each operation, with its invariant.
func runProbes(t *testing.T, cfg probes.Config, ops []scenarios.Operation) {
	t.Helper()
	for _, op := range ops {
		cfg.Invariant = invariantOf(op.Name)
		probes.RunTests(t, cfg, op)
	}
}

// TestProbes runs both probes on every bank operation, through database/sql
// (pgx stdlib) and pgx (pgxpool), and the pool of one on sqlmock (the
// catalog's operations, whose golden traces it serves): correct code has no
// finding.
func TestProbes(t *testing.T) {
	t.Parallel() // a database of its own: it runs beside the planted-bug tests, which mostly wait
	t.Run("sqlmock", func(t *testing.T) {
		probes.RunTests(t, probes.Config{Backend: faults.Mock, Golden: os.DirFS("testdata"), Seed: probeSeed}, catalog(theStore)...)
	})
	t.Run("database-sql", func(t *testing.T) {
		runProbes(t, probeConfig(t), probeCatalog(theStore))
	})
	t.Run("pgx", func(t *testing.T) {
		runProbes(t, probeConfig(t), pgxProbeCatalog(thePgxStore))
	})
}

// probesPlantedAt is how a report names this file.
const probesPlantedAt = "bank/probes_test.go:"

// leaksLockOnRefusal's transaction helper treats a refused transfer as
// nothing to undo and returns without ending the transaction — but the
// first UPDATE ran: its row lock stays with the open transaction until the
// caller's context ends, and every other transfer touching that account
// waits for it.
type leaksLockOnRefusal struct{ *Store }

func (s leaksLockOnRefusal) execTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		var ife *InsufficientFundsError
		if errors.As(err, &ife) {
			return err // "nothing was written": the transaction is left open, holding its row locks
		}
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s leaksLockOnRefusal) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	return transferWith(ctx, s.execTx, s.notifier, from, to, amount)
}

// pgxLeaksLockOnRefusal is leaksLockOnRefusal on pgx.
type pgxLeaksLockOnRefusal struct{ *PgxStore }

func (s pgxLeaksLockOnRefusal) Transfer(ctx context.Context, from, to, amount int64) (Transfer, error) {
	t := Transfer{From: from, To: to, Amount: amount}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Transfer{}, fmt.Errorf("bank: transfer: begin: %w", err)
	}
	if err := moveMoneyPgx(ctx, tx, from, to, amount); err != nil {
		var ife *InsufficientFundsError
		if errors.As(err, &ife) {
			return Transfer{}, err // the transaction is left open, holding its row locks
		}
		_ = tx.Rollback(ctx)
		return Transfer{}, fmt.Errorf("bank: transfer: %w", err)
	}
	if err := tx.QueryRow(ctx, `INSERT INTO transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id`,
		from, to, amount).Scan(&t.ID); err != nil {
		_ = tx.Rollback(ctx)
		return Transfer{}, fmt.Errorf("bank: transfer: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Transfer{}, fmt.Errorf("bank: transfer: commit: %w", err)
	}
	return t, nil
}

// TestProbesCatchPlanted runs a probe on each planted store — those of
// planted_test.go and pgxplanted_test.go, and the lock leaks above — and
// requires the finding the bug makes, at the planted code's file and line
// (in the finding's message or stack) where the bug leaves something behind.
func TestProbesCatchPlanted(t *testing.T) {
	t.Parallel() // most of its time is checks waiting out their deadlines on planted leaks: it waits beside the other planted tests
	sqlStore := func(f func(*Store) accounts) []scenarios.Operation {
		return probeCatalog(func(db *sql.DB, n Notifier) accounts { return f(NewStore(db, n)) })
	}
	pgxStore := func(f func(*PgxStore) accounts) []scenarios.Operation {
		return pgxProbeCatalog(func(p *pgxpool.Pool, n Notifier) accounts { return f(NewPgxStore(p, n)) })
	}
	tests := []struct {
		name   string
		ops    []scenarios.Operation
		op     string
		probe  string
		want   string // the finding's check
		at     string // the file the finding names; "" none
		holder bool   // a collateral finding names the goroutine that held what it waited for
		clean  bool   // no fault: the bug is on the code's own path
	}{
		{"no-deferred-rollback", sqlStore(func(s *Store) accounts { return noDeferredRollback{s} }),
			opTransfer, probes.ProbeConcurrent, "pool", plantedAt, false, false},
		{"swallowed-error", sqlStore(func(s *Store) accounts { return swallowedError{s} }),
			opTransfer, probes.ProbeConcurrent, probes.CheckError, "", false, false}, // the refusal reads as a success
		{"notifies-in-tx", sqlStore(func(s *Store) accounts { return notifiesInTx{s} }),
			opTransfer, probes.ProbePoolOfOne, "long-transaction", plantedAt, false, false},
		{"rows-left-open", sqlStore(func(s *Store) accounts { return rowsLeftOpen{s} }),
			opListAccounts, probes.ProbePoolOfOne, probes.CheckSecondConnection, plantedAt, false, false},
		{"rows-left-open/concurrent", sqlStore(func(s *Store) accounts { return rowsLeftOpen{s} }),
			opListAccounts, probes.ProbeConcurrent, "pool", plantedAt, false, false},
		{"leaks-lock-on-refusal", sqlStore(func(s *Store) accounts { return leaksLockOnRefusal{s} }),
			opTransfer, probes.ProbeConcurrent, probes.CheckCollateral, probesPlantedAt, true, true},
		{"pgx/panic-no-deferred-rollback", pgxStore(func(s *PgxStore) accounts { return pgxPanicNoRollback{s} }),
			opTransfer, probes.ProbeConcurrent, "pool", pgxPlantedAt, false, false},
		{"pgx/rows-left-open", pgxStore(func(s *PgxStore) accounts { return pgxRowsLeftOpen{s} }),
			opListAccounts, probes.ProbePoolOfOne, probes.CheckSecondConnection, pgxPlantedAt, false, false},
		{"pgx/notifies-in-tx", pgxStore(func(s *PgxStore) accounts { return pgxNotifiesInTx{s} }),
			opTransfer, probes.ProbePoolOfOne, "long-transaction", pgxPlantedAt, false, false},
		{"pgx/leaks-lock-on-refusal", pgxStore(func(s *PgxStore) accounts { return pgxLeaksLockOnRefusal{s} }),
			opTransfer, probes.ProbeConcurrent, probes.CheckCollateral, probesPlantedAt, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, ok := lookup(tt.ops, tt.op)
			if !ok {
				t.Fatalf("no operation %s", tt.op)
			}
			cfg := probeConfig(t)
			cfg.Invariant = invariantOf(tt.op)
			if tt.clean {
				cfg.FaultRate = -1
				cfg.Timeout = 2 * time.Second // the leak holds until the round's end: any deadline meets it
			}
			res := runProbe(t, tt.probe, cfg, op)
			var caught *probes.Finding
			for i, f := range res.Findings {
				if f.Check == tt.want && (tt.at == "" || strings.Contains(f.Message+f.Stack, tt.at)) && (!tt.holder || f.Holder >= 0) {
					caught = &res.Findings[i]
					break
				}
			}
			if caught == nil {
				t.Fatalf("%s on %s: no %q finding%s; got:\n%v", tt.probe, tt.op, tt.want, map[bool]string{true: " at " + tt.at}[tt.at != ""], res.Err())
			}
			if !strings.Contains(caught.Replay, "go test") || !strings.Contains(caught.Replay, "seed") {
				t.Errorf("the finding's replay is %q; want the go test command and the seed", caught.Replay)
			}
			t.Logf("caught:\n%v", res.Err())
		})
	}
}

// runProbe runs the probe named name, its replay the go test command of
// the test.
func runProbe(t *testing.T, name string, cfg probes.Config, op scenarios.Operation) probes.Result {
	t.Helper()
	cfg.Replay = func(_, _ string, seed int64) string {
		return fmt.Sprintf("%s   # seed %d", scenarios.GoTestCommand(t.Name()), seed)
	}
	if name == probes.ProbePoolOfOne {
		return probes.PoolOfOne(t.Context(), cfg, op)
	}
	return probes.Concurrent(t.Context(), cfg, op)
}

// TestProbeReportLeadsWithTheLeak: the report of the lock-leaking transfer
// leads, in JSON, JUnit and HTML, with what goroutine 2 left behind and
// where it was acquired; the transfers that timed out waiting for its lock
// come after, each naming it as their cause.
func TestProbeReportLeadsWithTheLeak(t *testing.T) {
	t.Parallel() // a database of its own: it runs beside the planted-bug tests, which mostly wait
	ops := probeCatalog(func(db *sql.DB, n Notifier) accounts { return leaksLockOnRefusal{NewStore(db, n)} })
	op, _ := lookup(ops, opTransfer)
	cfg := probeConfig(t)
	cfg.FaultRate = -1
	cfg.Timeout = 2 * time.Second // the leak holds until the round's end: any deadline meets it
	res := runProbe(t, probes.ProbeConcurrent, cfg, op)
	rep := report.New("probes", nil, cfg.Seed, time.Now())
	rep.AddProbe(res)
	rep.Finish(time.Now())

	first := rep.Violations[0]
	if first.Kind != report.KindLeak || !strings.Contains(first.Attribution, probesPlantedAt) {
		t.Fatalf("the report's first violation is %s %s (%s) with stack %q; want a leak acquired at %s\n%v",
			first.ID, first.Invariant, first.Kind, first.Attribution, probesPlantedAt, res.Err())
	}
	leaks := map[string]bool{}
	collateral := 0
	for _, v := range rep.Violations {
		switch {
		case v.Kind == report.KindLeak:
			if collateral > 0 {
				t.Errorf("leak %s comes after a symptom", v.ID)
			}
			leaks[v.ID] = true
		case v.Invariant == probes.CheckCollateral:
			collateral++
			if len(v.CausedBy) == 0 {
				t.Errorf("collateral %s names no cause", v.ID)
			}
			for _, c := range v.CausedBy {
				if !leaks[c] {
					t.Errorf("collateral %s is caused by %s, which is no leak before it", v.ID, c)
				}
			}
		}
	}
	if collateral == 0 {
		t.Fatalf("no collateral violation in the report:\n%v", res.Err())
	}

	var junit, page bytes.Buffer
	if err := report.WriteJUnit(&junit, rep); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteHTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"JUnit": junit.String(), "HTML": page.String()} {
		leak, symptom := strings.Index(text, "root cause"), strings.Index(text, "may follow from the earlier leak")
		if leak < 0 || symptom < 0 || leak > symptom {
			t.Errorf("%s: the root cause (at %d) must come before the symptom that names it (at %d)", name, leak, symptom)
		}
	}
}

// TestProbesCatchPlantedSqlmock: on sqlmock, the pool of one catches the
// planted store that tells its notifier inside the transaction, at its line.
func TestProbesCatchPlantedSqlmock(t *testing.T) {
	ops := catalog(func(db *sql.DB, n Notifier) accounts { return notifiesInTx{NewStore(db, n)} })
	op, _ := lookup(ops, opTransfer)
	res := runProbe(t, probes.ProbePoolOfOne, probes.Config{Backend: faults.Mock, Golden: os.DirFS("testdata"), Seed: probeSeed}, op)
	for _, f := range res.Findings {
		if f.Check == "long-transaction" && strings.Contains(f.Message+f.Stack, plantedAt) {
			t.Logf("caught:\n%v", res.Err())
			return
		}
	}
	t.Fatalf("no long-transaction finding at %s; got:\n%v", plantedAt, res.Err())
}

// TestProbeFaultsReplay: ten goroutines transfer at once, each under faults
// of its own. Every armed fault fires at the step it aims at in its own run
// (the refused transfers of goroutines 2, 5 and 8 take another path, which
// some faults never meet), no run fails for another's fault, and the same
// seed arms and fires the same faults on the same runs again.
func TestProbeFaultsReplay(t *testing.T) {
	t.Parallel() // a database of its own: it runs beside the planted-bug tests, which mostly wait
	op, _ := lookup(probeCatalog(theStore), opTransfer)
	record := func() []string {
		cfg := probeConfig(t)
		cfg.Goroutines, cfg.MaxRounds = 10, 6
		var runs []string
		cfg.Invariant = func(ctx context.Context, db *sql.DB, r probes.Round) error {
			for _, run := range r.Runs {
				line := fmt.Sprintf("round %d goroutine %d: plan %s", r.Index, run.Goroutine, run.Plan)
				for _, f := range run.Fired {
					line += fmt.Sprintf("; fired %s at %s", f.Rule.Fault, f.Step.Kind)
				}
				if len(run.Plan.Rules) > 0 && len(run.Fired) == 0 && run.Goroutine%3 != 2 {
					t.Errorf("%s: the fault never fired", line)
				}
				runs = append(runs, line)
			}
			return transfersAcknowledged(ctx, db, r)
		}
		res := runProbe(t, probes.ProbeConcurrent, cfg, op)
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		t.Log(res.Summary())
		return runs
	}
	first, second := record(), record()
	if strings.Join(first, "\n") != strings.Join(second, "\n") {
		t.Fatalf("seed %d armed or fired other faults the second time:\nfirst:\n%s\nsecond:\n%s", probeSeed,
			strings.Join(first, "\n"), strings.Join(second, "\n"))
	}
	armed := 0
	for _, l := range first {
		if !strings.HasSuffix(l, "plan ") && !strings.Contains(l, "plan ;") {
			armed++
		}
	}
	t.Logf("%d runs, %d of them armed, the same both times", len(first), armed)
}

// TestProbesStarvedOfConnections: on pools of one connection, goroutine 2's
// next refused transfer waits not for a lock but for its pool's only
// connection, which the leaked transaction keeps: the collateral finding
// says so, names the run that kept it and where that connection was taken.
func TestProbesStarvedOfConnections(t *testing.T) {
	t.Parallel() // a database of its own: it runs beside the planted-bug tests, which mostly wait
	ops := probeCatalog(func(db *sql.DB, n Notifier) accounts { return leaksLockOnRefusal{NewStore(db, n)} })
	op, _ := lookup(ops, opTransfer)
	cfg := probeConfig(t)
	cfg.FaultRate, cfg.PoolSize, cfg.Goroutines = -1, 1, 3
	cfg.Timeout = 2 * time.Second // the leak holds until the round's end: any deadline meets it
	res := runProbe(t, probes.ProbeConcurrent, cfg, op)
	for _, f := range res.Findings {
		if f.Check == probes.CheckCollateral && f.Goroutine == 2 && f.Holder == 2 &&
			strings.Contains(f.Message, "every connection of its own pool (1) was taken: it waited for one (its run 0 of round 0 returned with 1 connection(s) still taken)") &&
			strings.Contains(f.Stack, probesPlantedAt) {
			t.Logf("caught:\n%v", res.Err())
			return
		}
	}
	t.Fatalf("no collateral finding of goroutine 2 starved of connections by its own leak at %s; got:\n%v", probesPlantedAt, res.Err())
}

// TestProbeGoroutineCheck: a probe's goroutine check reports a goroutine its
// run leaves running, and never one that another test started meanwhile
// (here a goroutine the test starts, outside the probe, while the probe's run
// is under way) — probes run beside other tests (t.Parallel) without blaming
// their goroutines.
func TestProbeGoroutineCheck(t *testing.T) {
	t.Parallel() // a database of its own
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	transfer, ok := lookup(catalog(theStore), opTransfer)
	if !ok {
		t.Fatalf("no operation %s in the catalog", opTransfer)
	}
	beside := make(chan struct{}, 1) // the run asks the test beside it to start a goroutine
	started := make(chan struct{}, 1)
	go func() { // started before the probe: the other test's own goroutine
		for range beside {
			go func() { <-release }()
			started <- struct{}{}
		}
	}()
	t.Cleanup(func() { close(beside) })
	tests := []struct {
		name  string
		after func() // what the run does after its transfer
		want  bool   // a goroutines finding
	}{
		{"stray-goroutine-caught", func() { go func() { <-release }() }, true},
		{"goroutine-beside-not-blamed", func() { beside <- struct{}{}; <-started }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := transfer
			run := transfer.Run
			op.Run = func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) error {
				err := run(ctx, db, fx)
				tt.after()
				return err
			}
			res := probes.PoolOfOne(t.Context(), probeConfig(t), op)
			got := false
			for _, f := range res.Findings {
				if f.Check == string(leakcheck.CheckGoroutines) {
					got = true
				} else {
					t.Errorf("unexpected finding: %s: %s", f.Check, f.Message)
				}
			}
			if got != tt.want {
				t.Errorf("goroutines finding = %v; want %v (findings: %v)", got, tt.want, res.Findings)
			}
		})
	}
}
