package chaos

import (
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
)

// maxTraceSteps bounds the steps of an operation a violation prints.
const maxTraceSteps = 64

// chaosLatency is the delay of a latency fault in a run: short, so that faults cost the run
// little of its throughput.
const chaosLatency = 2 * time.Millisecond

// chaosSets are the faults a run draws from at each kind of step, with and without a server
// to terminate backends through: what faults.Applicable offers on Postgres at the steps
// whose failure the code under test must handle (connect, begin, prepare, exec, query,
// next, commit), less the kinds that hold a lock for a while (lock, stmt-timeout) and
// panics. Rollback, close, reset and validity checks are left alone.
var chaosSets = func() (sets [2][faults.StepClose + 1][]faults.Fault) {
	for _, k := range []faults.StepKind{faults.StepConnect, faults.StepBegin, faults.StepPrepare, faults.StepExec,
		faults.StepQuery, faults.StepNext, faults.StepCommit} {
		for _, f := range faults.Applicable(k, faults.Postgres) {
			switch f.Kind {
			case faults.KindLock, faults.KindStmtTimeout, faults.KindCancelBlocked, faults.KindPanic:
				continue
			case faults.KindLatency:
				f.Delay = chaosLatency
			}
			sets[1][k] = append(sets[1][k], f)
			if f.Kind != faults.KindTerminate {
				sets[0][k] = append(sets[0][k], f)
			}
		}
	}
	return sets
}()

// Faults returns the faults a run draws from at each step (the set of its faults.Rate):
// with server (a faults.Server, WithServer), terminate is among them; the wire kinds need a
// faults.Wire (WithWire).
func Faults(server bool) faults.FaultSet {
	set := &chaosSets[0]
	if server {
		set = &chaosSets[1]
	}
	return func(st *faults.Step) []faults.Fault {
		if int(st.Kind) >= len(set) {
			return nil
		}
		return set[st.Kind]
	}
}

// firedText prints each firing as "pgerr=40001 at commit".
func firedText(fs []faults.Firing) []string {
	if len(fs) == 0 {
		return nil
	}
	out := make([]string, len(fs))
	for n, f := range fs {
		out[n] = f.Rule.Fault.String() + " at " + f.Step.Kind.String()
	}
	return out
}

// ambiguousFiring reports whether a firing left a write's outcome unknown: a statement or
// commit cut after it reached the server.
func ambiguousFiring(fs []faults.Firing) bool {
	for _, f := range fs {
		if f.Rule.Fault.Kind == faults.KindAmbiguous || f.Rule.Fault.Kind == faults.KindCutAfter {
			return true
		}
	}
	return false
}

// traceText prints an operation's steps, noting when there were more than it kept.
func traceText(t faults.Trace) string {
	s := t.String()
	if len(t) >= maxTraceSteps {
		s += "... (trace truncated)\n"
	}
	return strings.TrimRight(s, "\n") + "\n"
}
