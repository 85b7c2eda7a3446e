package probes

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// The probes, as findings and results name them.
const (
	ProbePoolOfOne  = "pool-of-one"
	ProbeConcurrent = "concurrent"
)

// Checks a finding can name besides leakcheck's (pool, server,
// long-transaction, goroutines).
const (
	// CheckSecondConnection: the operation asked for a second connection
	// while it held one (PoolOfOne).
	CheckSecondConnection = "second-connection"
	// CheckCollateral: a run failed without a fault of its own: it waited
	// for a lock or a connection held by another run until its deadline.
	CheckCollateral = "collateral"
	// CheckInvariant: the user's Invariant failed after a round.
	CheckInvariant = "invariant"
	// CheckDeadline: a run did not return even once cancelled (it does not
	// honour its context); the finding carries the goroutine dump.
	CheckDeadline = "deadline"
	// CheckError: the operation failed with no fault anywhere (PoolOfOne,
	// or the clean recording of Concurrent).
	CheckError = "error"
	// CheckSetup: the probe could not get as far as its own idea (Setup
	// failed, the database could not be read): not a verdict on the code.
	CheckSetup = "setup"
)

// Finding is one thing a probe found broken.
type Finding struct {
	Probe     string // ProbePoolOfOne or ProbeConcurrent
	Operation string
	Check     string // a Check* constant, or a leakcheck.Check
	Round     int    // the round (Concurrent; 0 for PoolOfOne)
	Goroutine int    // the run's goroutine; -1: not one run's
	// Holder, for a collateral failure, is the goroutine whose session held
	// what the run waited for; -1 when none of the probe's is known.
	Holder int
	// Leak says the finding is about something left behind (a connection,
	// a transaction, a lock, a goroutine): a root cause, listed first.
	Leak    bool
	Message string
	// Stack is where the thing left behind was acquired, or the stacks of
	// the goroutines that waited.
	Stack  string
	At     time.Time
	Seed   int64
	Replay string
}

// String returns the finding as "probe Operation round R goroutine G: check:
// message", its stack indented after it.
func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", f.Probe, f.Operation)
	if f.Probe == ProbeConcurrent {
		fmt.Fprintf(&b, " round %d", f.Round)
	}
	if f.Goroutine >= 0 {
		fmt.Fprintf(&b, " goroutine %d", f.Goroutine)
	}
	fmt.Fprintf(&b, ": %s: %s", f.Check, strings.TrimRight(f.Message, "\n"))
	if f.Stack != "" {
		b.WriteString("\n" + indent(strings.TrimRight(f.Stack, "\n"), "    "))
	}
	return b.String()
}

// Result is the outcome of one probe of one operation.
type Result struct {
	Probe     string
	Operation string
	Seed      int64
	Rounds    int // rounds run (1 for PoolOfOne)
	Runs      int // runs of the operation
	Errors    int // runs that returned an error (their own faults included)
	Fired     int // faults that fired
	Duration  time.Duration
	Findings  []Finding // root causes (Leak) first, then in the order found
	Replay    string    // the command that replays this probe with this seed
}

// Failed reports whether the probe found anything.
func (r Result) Failed() bool { return len(r.Findings) > 0 }

// Err returns nil when the probe found nothing, else one error listing every
// finding — the root causes first — with the seed and the replay command.
func (r Result) Err() error {
	if len(r.Findings) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "probes: %s %s (seed %d): %d finding(s)", r.Probe, r.Operation, r.Seed, len(r.Findings))
	for _, f := range r.Findings {
		kind := "symptom"
		if f.Leak {
			kind = "root cause"
		}
		fmt.Fprintf(&b, "\n  [%s] %s", kind, indent(f.String(), "  ")[2:])
	}
	if r.Replay != "" {
		fmt.Fprintf(&b, "\n  replay: %s", r.Replay)
	}
	return errors.New(b.String())
}

// Summary returns one line of figures.
func (r Result) Summary() string {
	return fmt.Sprintf("probe %s %s seed=%d rounds=%d runs=%d errors=%d faults=%d duration=%s findings=%d",
		r.Probe, r.Operation, r.Seed, r.Rounds, r.Runs, r.Errors, r.Fired, r.Duration.Round(time.Millisecond), len(r.Findings))
}

// sortFindings puts the leaks first, each group in the order found.
func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		switch {
		case a.Leak == b.Leak:
			return 0
		case a.Leak:
			return -1
		}
		return 1
	})
}

// leakFindings turns a leakcheck error into findings: one per leakcheck
// finding (a root cause, its Detail the stack), or one setup finding for an
// error that kept every check from running.
func leakFindings(err error, base Finding) []Finding {
	if err == nil {
		return nil
	}
	var le *leakcheck.Error
	if !errors.As(err, &le) {
		f := base
		f.Check, f.Message = CheckSetup, "leak check: "+err.Error()
		return []Finding{f}
	}
	out := make([]Finding, 0, len(le.Findings))
	for _, lf := range le.Findings {
		f := base
		f.Check, f.Leak, f.Message, f.Stack = string(lf.Check), true, lf.Summary, lf.Detail
		out = append(out, f)
	}
	return out
}

func indent(s, pad string) string {
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}
