package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Workload is what a run runs: the user's operations, how a worker's data is set up, and
// how what the operations wrote is read back and checked. Only Operations is required.
type Workload struct {
	// Name names the workload in violations and logs (e.g. "bank").
	Name string
	// Operations are drawn by weight, one at a time per worker.
	Operations []Operation
	// Pgx runs the operations' RunPgx on a pgxpool of the worker's (else their Run on a
	// *sql.DB of the worker's).
	Pgx bool
	// Setup prepares the data of a worker's scope before its first operation, and again
	// for each new scope (Config.MaxWrites): e.g. open the worker's accounts. It runs on
	// the run's clean pool (no faults) and may keep what it made in w.State.
	Setup func(ctx context.Context, db *sql.DB, w *Worker) error
	// Lookup reads back how many times the write named key (Op.Write) is stored, on the
	// run's clean pool. Nil: the ledger's writes are counted and checked by reads (Op.Saw)
	// only — a workload with a ledger of its own checks it in an Invariant.
	Lookup func(ctx context.Context, db *sql.DB, w *Worker, key string) (int, error)
	// Invariants are checked on each worker's scope when its ledger is full and at
	// quiescence (and only then: they need no operation of the worker under way).
	Invariants []Invariant
	// Expected reports whether err is an answer the operations give with nothing failing
	// (not found, insufficient funds, bad input): an operation failing so with no fault of
	// its own is no finding. Nil: every error with no fault is a finding.
	Expected func(err error) bool
}

// Operation is one kind of operation of a workload.
type Operation struct {
	Name   string
	Weight int // relative frequency; 0 means 1
	// Run runs the operation once on the worker's pool. Choices come from o.Rand.
	Run func(ctx context.Context, db *sql.DB, o *Op) error
	// RunPgx is Run for a Workload.Pgx run.
	RunPgx func(ctx context.Context, pool *pgxpool.Pool, o *Op) error
}

// Invariant is a property of a worker's scope that holds after any operations, whatever
// failed: e.g. the sum of its accounts' balances is what Setup opened them with.
type Invariant struct {
	Name string
	// Check reads the worker's scope back on the run's clean pool and returns what is
	// broken, one problem a string; an error is a check that could not read.
	Check func(ctx context.Context, db *sql.DB, w *Worker) ([]string, error)
}

// Worker is one worker of a run, as its workload sees it.
type Worker struct {
	ID    int
	Seed  int64  // the stream seed: run seed + ID
	Scope string // unique to the worker and its ledger generation: name its data with it
	// State is the workload's own, set by Setup (e.g. the worker's account ids).
	State any

	ledger *ledger
}

// Wrote records in the worker's ledger a write Setup made (and so acknowledged): reads
// must find it (Op.Saw), and Workload.Lookup must read it back.
func (w *Worker) Wrote(key string) {
	if w.ledger != nil {
		w.ledger.record(key, Acked)
	}
}

// Outcome is what the caller of a write knows of it.
type Outcome int

// The outcomes.
const (
	Acked     Outcome = iota + 1 // it succeeded: it must be stored
	Ambiguous                    // unknown: a cut after the server had it, or server chaos meanwhile
	Failed                       // it failed cleanly: it must not be stored
)

// String returns "acknowledged", "ambiguous" or "failed".
func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acknowledged"
	case Ambiguous:
		return "ambiguous"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Op is one operation under way: what it is, its choices, and what it tells the run's
// ledger.
type Op struct {
	Worker *Worker
	Index  int        // in the worker's stream
	Rand   *rand.Rand // the operation's choices, from (stream seed, Index) alone

	w      *worker
	epoch  int64
	writes []string
	reads  []string // read problems
}

// Write declares that the operation, if it succeeds, stores the write named key (unique
// within the worker's scope: e.g. a client-chosen id). When the operation returns, the
// ledger records the key with the operation's outcome; Workload.Lookup reads it back.
func (o *Op) Write(key string) { o.writes = append(o.writes, key) }

// Saw tells the ledger that a read that succeeded found the write key stored n times: a
// read answering that an acknowledged write is missing, or that a write that failed
// cleanly is there, is a violation (read) — e.g. a read that swallowed an error and
// answered an empty success.
func (o *Op) Saw(key string, n int) {
	switch out := o.w.ledger.outcome(key); {
	case out == Acked && n == 0:
		o.reads = append(o.reads, fmt.Sprintf("a read that succeeded did not find %q, whose write was acknowledged", key))
	case out == Failed && n > 0:
		o.reads = append(o.reads, fmt.Sprintf("a read that succeeded found %q, whose write failed cleanly", key))
	case n > 1:
		o.reads = append(o.reads, fmt.Sprintf("a read found %q stored %d times", key, n))
	}
}

// Inconsistent records that a read contradicted what the worker knows: a violation (read)
// with msg.
func (o *Op) Inconsistent(msg string) { o.reads = append(o.reads, msg) }

// Faulted reports whether the operation so far met a fault of its own or server chaos: a
// read that fails then may be the fault's doing.
func (o *Op) Faulted() bool { return len(o.w.fired()) > 0 || o.w.run.overlapped(o.epoch) }

// Known returns the writes of the worker's scope the ledger has, of outcome out, in the
// order they were first written.
func (o *Op) Known(out Outcome) []string { return o.w.ledger.known(out) }

// Outcome says what the caller of a write that returned err knows of it: Acked for nil,
// Ambiguous when a fault of the operation cut a statement or commit after the server had
// it or server chaos overlapped the operation, else Failed.
func (o *Op) Outcome(err error) Outcome { return o.w.outcomeOf(err, o.epoch) }

// External runs fn, a call outside the database (a notifier, an HTTP call), so that a
// transaction of the worker's held across it is a finding (long-transaction): work that
// belongs after a commit, done inside the transaction.
func (o *Op) External(ctx context.Context, name string, fn func(context.Context) error) error {
	if o.w.pgxTracker != nil {
		return o.w.pgxTracker.External(ctx, name, fn)
	}
	if o.w.tracker != nil {
		return o.w.tracker.External(ctx, name, fn)
	}
	return fn(ctx)
}

// validate rejects a workload no run can run.
func (wl *Workload) validate() error {
	if wl == nil || len(wl.Operations) == 0 {
		return fmt.Errorf("%w: the workload has no operations", ErrConfig)
	}
	for _, op := range wl.Operations {
		switch {
		case op.Name == "":
			return fmt.Errorf("%w: an operation of workload %q has no name", ErrConfig, wl.Name)
		case op.Weight < 0:
			return fmt.Errorf("%w: operation %q: weight %d, must not be negative", ErrConfig, op.Name, op.Weight)
		case wl.Pgx && op.RunPgx == nil:
			return fmt.Errorf("%w: operation %q has no RunPgx for a pgx workload", ErrConfig, op.Name)
		case !wl.Pgx && op.Run == nil:
			return fmt.Errorf("%w: operation %q has no Run for a database/sql workload", ErrConfig, op.Name)
		}
	}
	return nil
}

// pick returns the operation a draw n (0 <= n < total weight) names.
func (wl *Workload) pick(n int) *Operation {
	for i := range wl.Operations {
		w := max(wl.Operations[i].Weight, 1)
		if n < w {
			return &wl.Operations[i]
		}
		n -= w
	}
	return &wl.Operations[len(wl.Operations)-1]
}

func (wl *Workload) totalWeight() int {
	n := 0
	for _, op := range wl.Operations {
		n += max(op.Weight, 1)
	}
	return n
}
