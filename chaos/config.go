package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"

	"go.uber.org/goleak"
)

// ServerControl is what server chaos needs of the server beyond SQL (a *pgtest.Server).
type ServerControl interface {
	Restart(ctx context.Context) error
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
}

// Target is the real Postgres database a run works on.
type Target struct {
	DSN     string  // URL DSN of the database (with an application_name, which the workers replace)
	Admin   *sql.DB // a superuser pool on the same server, for the server checks and terminations
	AppName string  // prefix of the workers' application_names
	Server  ServerControl
}

// Config is one chaos run.
type Config struct {
	Seed    int64
	Workers int
	Ops     int // operations in all, split across the workers (0: until Duration)
	// Duration bounds the run (0: until Ops). With server chaos, the run goes on past it
	// until every kind configured (terminate, restart, pause) has acted at least once — a
	// run that ended before its first restart would have tested nothing — but at most
	// max(2 minutes, 10 of the longest period) past it.
	Duration  time.Duration
	FaultRate float64 // probability of a fault at each eligible driver step

	From     int   // skip the operations of each stream before this index
	FaultsAt []int // nil: faults anywhere; else only in these operations of each stream

	// Panics adds injected panics (faults.KindPanic, at rows-next steps, where database/sql
	// survives them) to the faults of a database/sql run: the panic must reach the worker
	// as the panic it is, and the operation's connection and transaction must end.
	Panics bool

	TerminateEvery time.Duration
	RestartEvery   time.Duration
	PauseEvery     time.Duration

	// OpTimeout bounds the time of one operation, not counting the time it was queued for
	// a connection (opening one); one still running then is a violation. Zero:
	// DefaultOpTimeout(Workers).
	OpTimeout time.Duration
	// CheckTimeout is how long the checks poll for things to settle (connections back in
	// the pool, sessions out of their transactions, goroutines ended) before what is still
	// held is a finding. Zero: 2s for up to four workers per CPU, growing as OpTimeout does
	// and for the same reason, at most 30s; it only costs time when something is held.
	CheckTimeout time.Duration
	// ServerCheckEvery runs the server check every this many operations of a worker
	// (0: 200), besides quiescence.
	ServerCheckEvery int
	// MaxWrites bounds the writes a worker keeps in its ledger: at it, the whole ledger and
	// every invariant are checked against the database and the worker starts afresh in a new
	// scope (Worker.Scope, Workload.Setup), so memory stays flat on a long run. Zero: 256.
	MaxWrites int
	// NoChecks turns every check and the ledger off and FaultRate is ignored: the baseline
	// workload of the throughput benchmark.
	NoChecks bool
	// NoGoroutineCheck turns the goroutine check at quiescence off.
	NoGoroutineCheck bool
	// GoroutineOptions are added to the goroutine check: the goroutines of the harness
	// itself that a run may start (e.g. the waiter of a restarted local server).
	GoroutineOptions []goleak.Option

	// connShare, when set (tests), is the run's share of the server's connections instead
	// of what the server has free.
	connShare int

	// Log, if set, gets one line per fault fired and per violation.
	Log io.Writer
	// Counters, if set, is updated live (for a progress display).
	Counters *Counters
}

// validate rejects a configuration no run can honour: the first bad field is named with
// its value. NaN compares false with everything, so the rate is checked for being inside
// 0..1 rather than for being outside it.
func (c *Config) validate() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("%w: workers %d, want at least 1", ErrConfig, c.Workers)
	case c.Ops < 0:
		return fmt.Errorf("%w: ops %d, must not be negative", ErrConfig, c.Ops)
	case c.Duration < 0:
		return fmt.Errorf("%w: duration %s, must not be negative", ErrConfig, c.Duration)
	case c.Ops == 0 && c.Duration == 0:
		return fmt.Errorf("%w: neither ops nor duration set: the run would never end", ErrConfig)
	case !(c.FaultRate >= 0 && c.FaultRate <= 1):
		return fmt.Errorf("%w: fault rate %g, want 0..1", ErrConfig, c.FaultRate)
	case c.From < 0:
		return fmt.Errorf("%w: from %d, must not be negative", ErrConfig, c.From)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"terminate every", c.TerminateEvery}, {"restart every", c.RestartEvery}, {"pause every", c.PauseEvery},
		{"op timeout", c.OpTimeout}, {"check timeout", c.CheckTimeout}} {
		if d.d < 0 {
			return fmt.Errorf("%w: %s %s, must not be negative", ErrConfig, d.name, d.d)
		}
	}
	return nil
}

// DefaultOpTimeout is the operation deadline of a run of workers when none is given: 5s
// for up to four workers per CPU (runtime.GOMAXPROCS), and 5s more for every four more per
// CPU, at most 2 minutes. An operation's own time is mostly waiting for a CPU — its
// worker's goroutine, and its backend on the server, which on the machines this runs on
// shares the cores — and with every worker busy each CPU serves its share of them in turn,
// so a correct operation's latency grows in proportion to the workers per CPU. 5s is
// the deadline that has held for the default 8 workers on a 2-core machine (four per CPU)
// with room for a loaded machine; keeping the same ratio keeps a correct run at 400
// workers from ending in a storm of deadline violations. What a deadline is for — an
// operation hung on a lock or a connection its own code holds — is still caught, later.
func DefaultOpTimeout(workers int) time.Duration {
	return min(time.Duration(loadFactor(workers))*5*time.Second, 2*time.Minute)
}

// loadFactor is how many times four workers per CPU a run has, at least 1.
func loadFactor(workers int) int {
	perCPU := 4 * runtime.GOMAXPROCS(0)
	return max((workers+perCPU-1)/perCPU, 1)
}

func (c *Config) defaults() {
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout(c.Workers)
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = min(time.Duration(loadFactor(c.Workers))*2*time.Second, 30*time.Second)
	}
	if c.MaxWrites == 0 {
		c.MaxWrites = 256
	}
	if c.ServerCheckEvery == 0 {
		c.ServerCheckEvery = 200
	}
}

// serverChaos reports whether the run terminates, restarts or pauses the server: then a
// connection error is to be expected at any step, and an operation failing with no fault of
// its own is no longer a finding.
func (c *Config) serverChaos() bool {
	return c.TerminateEvery > 0 || c.RestartEvery > 0 || c.PauseEvery > 0
}

// opsOf returns how many operations worker w runs (-1: until the duration ends).
func (c *Config) opsOf(w int) int {
	if c.Ops == 0 {
		return -1
	}
	n := c.Ops / c.Workers
	if w < c.Ops%c.Workers {
		n++
	}
	return n
}

// Violation is one broken invariant found by a run.
type Violation struct {
	Invariant   string // pool, server, long-transaction, goroutines, deadline, ledger, read, swallowed-panic, an invariant's name, ...
	Worker      int    // -1: not one worker's (quiescence, goroutines)
	StreamSeed  int64  // the seed that replays the worker's stream alone
	OpIndex     int    // the operation of the worker's stream (-1: not one operation's)
	Operation   string
	Faults      []string // the faults that fired in that operation
	Message     string
	Trace       string // the operation's driver steps
	Attribution string // where the leaked connection or transaction was acquired
}

func (v Violation) String() string {
	where := "at quiescence"
	if v.OpIndex >= 0 {
		where = fmt.Sprintf("worker %d (stream seed %d) operation %d %s", v.Worker, v.StreamSeed, v.OpIndex, v.Operation)
	} else if v.Worker >= 0 {
		where = fmt.Sprintf("worker %d (stream seed %d) at quiescence", v.Worker, v.StreamSeed)
	}
	s := fmt.Sprintf("%s: %s: %s", v.Invariant, where, v.Message)
	if len(v.Faults) > 0 {
		s += " [faults: " + strings.Join(v.Faults, ", ") + "]"
	}
	return s
}

// Result is the outcome of a run.
type Result struct {
	Seed       int64
	Workers    int
	Operations int64
	Errors     int64 // operations that returned an error (expected under faults)
	Faults     int64
	Terminated int64
	Restarts   int64
	Pauses     int64
	Acked      int64 // acknowledged writes checked by the ledger
	Ambiguous  int64 // writes whose outcome the client could not know
	Duration   time.Duration
	// Queued is the time operations spent queued for a connection, in all: not counted
	// against their deadline.
	Queued      time.Duration
	Interrupted bool
	Violations  []Violation
	// WorkerOps is, per worker, the index after the last operation it ran.
	WorkerOps map[int]int
	// FaultOps lists, per worker, the operation indices where a fault fired (for shrinking).
	FaultOps map[int][]int
}

// OpsPerSec is the run's throughput.
func (r *Result) OpsPerSec() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Operations) / r.Duration.Seconds()
}

func (r *Result) faultOpsOf(w int) []int {
	ops := append([]int(nil), r.FaultOps[w]...)
	sort.Ints(ops)
	return ops
}
