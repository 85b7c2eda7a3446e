package probes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// ErrConfig is wrapped by the error of a configuration that cannot run.
var ErrConfig = errors.New("probes: bad config")

// Config says where the probes run and how hard they push. The zero value of
// each optional field takes the default written next to it.
type Config struct {
	// Backend is faults.Postgres (the zero value means it) or faults.Mock:
	// on sqlmock only PoolOfOne runs (sqlmock serves one expected sequence
	// of statements, which concurrent runs would interleave), with the
	// operation's golden trace as its expectations and no server check.
	Backend faults.Backend
	// Golden (sqlmock) holds the golden traces, "<operation>.trace", as
	// scenarios.RecordGolden writes them.
	Golden fs.FS

	// DSN opens the probes' pools: pgx stdlib for an operation's Run, a
	// pgxpool.Pool for its RunPgx. Each pool gets an application_name of its
	// own, AppName + "-g<N>" (N the goroutine), whatever DSN says.
	DSN string
	// DB is the plain pool the operation's Setup and the Invariant run on.
	DB *sql.DB
	// Admin is a pool on the same server under another application_name,
	// for the server check and the lock waits (pg_stat_activity, pg_locks).
	Admin *sql.DB
	// AppName prefixes the application_name of every probe pool.
	AppName string

	// Seed drives every random choice (which run gets which fault); the
	// same seed replays the same rounds.
	Seed int64
	// Goroutines is how many runs of a round go at once (default 4).
	Goroutines int
	// RunsPerRound is how many runs each goroutine makes in a round, one
	// after the other (default 2): a run that leaves something behind meets
	// it again in its goroutine's next run, whatever the scheduler does.
	RunsPerRound int
	// PoolSize is each goroutine's pool size in Concurrent (default 2).
	PoolSize int
	// FaultRate is the chance that a run gets a fault of its own (default
	// 0.5; negative: none).
	FaultRate float64
	// MaxRounds bounds the rounds of Concurrent (default 64); it stops
	// earlier once every (step, fault) pair of the clean trace has run, or
	// after the first round with a finding. With no faults it runs
	// MinRounds.
	MaxRounds int
	// MinRounds is the fewest rounds Concurrent runs (default 3).
	MinRounds int
	// Timeout is each run's deadline, watched by the probe (default 5s):
	// a run still running then is a collateral finding (or, with a fault of
	// its own, just a failed run), looked at on the server and cancelled.
	Timeout time.Duration
	// CheckTimeout bounds the leak checks after a round (default 2s).
	CheckTimeout time.Duration
	// Faults, if set, replaces the faults tried at a step of kind k.
	// Nil: faults.Applicable (database/sql, driver-level kinds) or
	// faults.ApplicablePgx (pgx), without panic at a prepared exec.
	Faults func(k faults.StepKind) []faults.Fault
	// Invariant, if set, is checked after every round of Concurrent, on DB:
	// e.g. "money is conserved", "every acknowledged write is there".
	Invariant func(ctx context.Context, db *sql.DB, r Round) error
	// NoGoroutineCheck turns off the check that no goroutine the probe
	// started outlives it. The check looks at the probe's own goroutines
	// (a leakcheck.Scope), so probes run beside other tests (t.Parallel)
	// without blaming their goroutines.
	NoGoroutineCheck bool
	// Replay returns the command that replays probe on operation with seed;
	// nil: none outside RunTests, which prints its go test command.
	Replay func(probe, operation string, seed int64) string
}

// Round is what the Invariant is given after each round of Concurrent.
type Round struct {
	Index   int               // 0, 1, ...
	Fixture scenarios.Fixture // what Setup returned for the round: every run of it shared it
	Runs    []Run             // one per goroutine, in goroutine order
}

// Run is one run of the operation in a round.
type Run struct {
	Goroutine int
	Plan      faults.Plan     // the fault armed for it (empty: none)
	Fired     []faults.Firing // what fired
	Faulted   bool            // a fault of its own, other than latency, fired
	Err       error           // what the operation returned; a recovered panic is an error too
	TimedOut  bool            // the probe cancelled it at its deadline
}

func (c Config) withDefaults() Config {
	if c.Backend == 0 {
		c.Backend = faults.Postgres
	}
	if c.Goroutines <= 0 {
		c.Goroutines = 4
	}
	if c.RunsPerRound <= 0 {
		c.RunsPerRound = 2
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 2
	}
	if c.FaultRate == 0 {
		c.FaultRate = 0.5
	}
	if c.MaxRounds <= 0 {
		c.MaxRounds = 64
	}
	if c.MinRounds <= 0 {
		c.MinRounds = 3
	}
	if c.MinRounds > c.MaxRounds {
		c.MinRounds = c.MaxRounds
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Second
	}
	return c
}

// check returns what keeps c and op from running, or nil.
func (c Config) check(op scenarios.Operation) error {
	var probs []string
	if op.Setup == nil || (op.Run == nil) == (op.RunPgx == nil) {
		probs = append(probs, "operation "+op.Name+" needs Setup and exactly one of Run and RunPgx")
	}
	switch {
	case c.Backend == faults.Mock:
		if c.Golden == nil {
			probs = append(probs, "sqlmock needs Golden (the file system holding "+op.Name+".trace: record it with scenarios.RecordGolden)")
		}
		if op.RunPgx != nil {
			probs = append(probs, "sqlmock mocks database/sql, which RunPgx does not go through")
		}
	case c.Backend != faults.Postgres:
		probs = append(probs, fmt.Sprintf("backend %v: want faults.Postgres or faults.Mock", c.Backend))
	case c.DSN == "":
		probs = append(probs, "DSN is empty (the probes open their pools from it)")
		fallthrough
	default:
		if c.DB == nil {
			probs = append(probs, "DB is nil (Setup and the Invariant run on it)")
		}
		if c.Admin == nil || c.AppName == "" {
			probs = append(probs, "Admin and AppName are needed (the server check and the lock waits)")
		}
	}
	if c.FaultRate > 1 {
		probs = append(probs, fmt.Sprintf("FaultRate %v: want at most 1", c.FaultRate))
	}
	if len(probs) > 0 {
		return fmt.Errorf("probes: %s: %s: %w", op.Name, strings.Join(probs, "; "), ErrConfig)
	}
	return nil
}

// goroutineKey is the context key of the goroutine number of a probe run.
type goroutineKey struct{}

// Goroutine returns the number (0, 1, ...) of the probe goroutine whose run
// ctx belongs to, so that an operation can vary its work by goroutine (e.g.
// transfers in both directions between the round's accounts); ok is false
// outside a probe.
func Goroutine(ctx context.Context) (g int, ok bool) {
	g, ok = ctx.Value(goroutineKey{}).(int)
	return g, ok
}
