package scenarios

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
)

// The backends a matrix runs on: faults.Backend values, printed "sqlmock" and
// "postgres".
const (
	// Sqlmock runs the operation against go-sqlmock with expectations
	// generated from its golden trace (faults.Mock: driver faults only).
	Sqlmock = faults.Mock
	// Postgres runs the operation against a real PostgreSQL (driver, wire
	// and server faults).
	Postgres = faults.Postgres
)

// StepClean is the StepKind of the clean case: step 0, no fault armed (its
// Fault is the zero faults.Fault). It is no step of a trace; case names print
// it, and its fault, as "clean".
const StepClean faults.StepKind = 0

// Invariant names a check a case must pass.
type Invariant string

// The invariants every case is checked against.
const (
	// InvSetup: the fixture could be prepared (a harness or environment error,
	// not a finding about the operation).
	InvSetup Invariant = "setup"
	// InvFired: the armed fault fired at its step (otherwise the trace
	// changed: the case tested nothing).
	InvFired Invariant = "fault-fired"
	// InvErrorSurfaced: the injected failure reached the caller as an error.
	InvErrorSurfaced Invariant = "error-surfaced"
	// InvRetried: a fault the operation (or database/sql) retries ended in
	// success.
	InvRetried Invariant = "retry-succeeded"
	// InvAllOrNothing: the state read back is exactly the before-state or
	// exactly the after-state, and the after-state only if the caller was
	// told of success (ambiguous commit: either, and the caller got an error).
	InvAllOrNothing Invariant = "all-or-nothing"
	// InvPool: no connection of the instrumented pool still in use.
	InvPool Invariant = "pool"
	// InvServer: no backend of the case's application_name idle in
	// transaction, aborted or active, and no lock held by one.
	InvServer Invariant = "server"
	// InvGoroutines: no goroutine outlived the case.
	InvGoroutines Invariant = "goroutines"
	// InvExpectations: on sqlmock, the expectations generated from the golden
	// trace were met, in order, rollback included.
	InvExpectations Invariant = "sqlmock-expectations"
	// InvDeadline: the case finished before its deadline (a hang carries the
	// goroutine dump).
	InvDeadline Invariant = "deadline"
	// InvLongTx: no transaction was held open across an external call (a
	// call the operation made through External).
	InvLongTx Invariant = "long-transaction"
	// InvContext: every database call ran on the caller's context (a
	// cancel fault found no context of the operation's own, such as
	// context.Background(), at a call) and returned promptly once that
	// context was cancelled.
	InvContext Invariant = "context-honoured"
	// InvSession: on Postgres, every connection the operation gave back to
	// the pool carries the session state a fresh connection carries: no
	// session-level SET (SET without LOCAL), advisory lock, temporary
	// table, LISTEN or prepared statement left for its next user.
	InvSession Invariant = "session-state"
)

// Case is one cell of the matrix: an operation rerun with one fault armed at
// one step of its clean trace, on one backend.
type Case struct {
	Backend   faults.Backend
	Operation string
	Step      int             // index of the step in the clean trace (the plan's step=N); 0: the clean case
	StepKind  faults.StepKind // the step's kind, e.g. faults.StepCommit; StepClean for the clean case
	SQL       string          // the step's SQL, when it has one
	Fault     faults.Fault    // the fault armed at the step; the zero Fault for the clean case
}

// Clean reports whether c is the clean case: the operation run with no fault
// armed.
func (c Case) Clean() bool { return c.StepKind == StepClean }

// StepName returns the step's kind as case names print it, e.g. "commit",
// or "clean" for the clean case.
func (c Case) StepName() string {
	if c.Clean() {
		return "clean"
	}
	return c.StepKind.String()
}

// FaultName returns the fault as the plan language writes it, e.g.
// "pgerr=40001", or "clean" for the clean case.
func (c Case) FaultName() string {
	if c.Clean() {
		return "clean"
	}
	return c.Fault.String()
}

// Name returns the case's subtest name, "operation/step-N-kind/fault", e.g.
// "UpdateThread/step-7-commit/pgerr=40001" or "ListThreads/step-0-clean/clean".
func (c Case) Name() string {
	return fmt.Sprintf("%s/step-%d-%s/%s", c.Operation, c.Step, c.StepName(), c.FaultName())
}

// Plan returns the fault plan the case arms, e.g. "step=7:pgerr=40001"
// ("step=0:clean" for the clean case, which arms none).
func (c Case) Plan() string {
	return fmt.Sprintf("step=%d:%s", c.Step, c.FaultName())
}

// String returns the backend and the name, e.g.
// "postgres/UpdateThread/step-7-commit/pgerr=40001".
func (c Case) String() string { return c.Backend.String() + "/" + c.Name() }

// Finding is one broken invariant of one case.
type Finding struct {
	Case      Case
	Invariant Invariant
	Message   string // what was seen, e.g. "got nil error; want the injected pgerr=40001"
	Trace     string // the case's own recorded trace, readable
	Replay    string // the command that replays exactly this case
}

// Error returns the full failure message: the invariant, the case, the step
// with its SQL, the fault, what was seen and the replay command.
func (f Finding) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenarios: invariant %q broken by %s\n", f.Invariant, f.Case)
	fmt.Fprintf(&b, "  step %d (%s)", f.Case.Step, f.Case.StepName())
	if f.Case.SQL != "" {
		fmt.Fprintf(&b, ": %s", oneLine(f.Case.SQL, 200))
	}
	fmt.Fprintf(&b, "\n  fault: %s (plan %q)\n", f.Case.FaultName(), f.Case.Plan())
	for _, l := range strings.Split(strings.TrimRight(f.Message, "\n"), "\n") {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	if f.Trace != "" {
		b.WriteString("  trace of this case:\n")
		for _, l := range strings.Split(strings.TrimRight(f.Trace, "\n"), "\n") {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	if f.Replay != "" {
		fmt.Fprintf(&b, "  replay: %s\n", f.Replay)
	}
	return strings.TrimRight(b.String(), "\n")
}

// Result is the outcome of one case.
type Result struct {
	Case     Case
	Err      error         // what the operation returned (a recovered panic is an error too)
	Fired    bool          // the fault fired
	Findings []Finding     // empty when every invariant held
	Duration time.Duration // the whole case: fresh state, the run and the checks
	RunTime  time.Duration // the operation alone
	Phases   Phases        // where the rest of Duration went
}

// Phases splits the harness's share of a case's Duration (all of it but
// RunTime) by what it did, for finding where a matrix spends its time; a
// part the case did not reach is zero.
type Phases struct {
	// Setup: ending what the lane's last case left on the server, and the
	// operation's Setup (the case's fresh state).
	Setup time.Duration
	// Connect: readying the case's pool — a ping of its warm connection, or a
	// fresh pool and connection after a fault that may have broken one (a
	// pgx operation's case opens a fresh pool every time; on sqlmock, a
	// fresh mock with the case's expectations).
	Connect time.Duration
	// Checks: the pool, server and goroutine checks and the state read-back,
	// side by side.
	Checks time.Duration
	// Session: the session-state check of the connections the case gave back
	// (Postgres, database/sql).
	Session time.Duration
}

// phaseClock returns a function that returns the time since it was last
// called (the first time: since phaseClock): one part of a case (Phases).
func phaseClock() func() time.Duration {
	last := time.Now()
	return func() time.Duration {
		now := time.Now()
		d := now.Sub(last)
		last = now
		return d
	}
}

// Failed reports whether any invariant broke.
func (r Result) Failed() bool { return len(r.Findings) > 0 }

// Report is the outcome of a matrix run.
type Report struct {
	Backend  faults.Backend
	Results  []Result
	Duration time.Duration
	// Unavailable lists the fault families the configuration could not
	// apply, each with the reason and the fix (see Runner.Unavailable).
	Unavailable []string
}

// Findings returns every finding of every case, in case order.
func (r Report) Findings() []Finding {
	var out []Finding
	for _, res := range r.Results {
		out = append(out, res.Findings...)
	}
	return out
}

// Failed reports whether any case broke an invariant.
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Failed() {
			return true
		}
	}
	return false
}

// Verdicts maps each case's name to the invariants it broke, sorted and
// joined with "," ("" for a case that passed): what two runs of the same
// matrix — one case at a time and in parallel, or a whole run and a replay
// — must agree on.
func (r Report) Verdicts() map[string]string {
	out := make(map[string]string, len(r.Results))
	for _, res := range r.Results {
		invs := make([]string, 0, len(res.Findings))
		for _, f := range res.Findings {
			invs = append(invs, string(f.Invariant))
		}
		slices.Sort(invs)
		out[res.Case.Name()] = strings.Join(invs, ",")
	}
	return out
}

// VerdictDiff returns one line per case on which r and other disagree (a
// case one of them did not run included), in case-name order; none when
// they agree on every case.
func (r Report) VerdictDiff(other Report) []string {
	a, b := r.Verdicts(), other.Verdicts()
	names := slices.Sorted(maps.Keys(a))
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []string
	for _, n := range names {
		va, inA := a[n]
		vb, inB := b[n]
		switch {
		case !inB:
			out = append(out, fmt.Sprintf("%s: broke [%s] in the first run; not run in the second", n, va))
		case !inA:
			out = append(out, fmt.Sprintf("%s: broke [%s] in the second run; not run in the first", n, vb))
		case va != vb:
			out = append(out, fmt.Sprintf("%s: broke [%s] in the first run, [%s] in the second", n, va, vb))
		}
	}
	return out
}

// oneLine collapses whitespace and cuts s to at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
