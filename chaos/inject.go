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

// chaosKinds are the steps a run fails: those whose failure the code under test must
// handle. Rollback, close, reset and validity checks are left alone.
var chaosKinds = []faults.StepKind{faults.StepConnect, faults.StepBegin, faults.StepPrepare, faults.StepExec,
	faults.StepQuery, faults.StepNext, faults.StepCommit}

type faultSets [faults.StepClose + 1][]faults.Fault

// chaosSets are the faults a database/sql run draws from at each kind of step, indexed by
// [with a server to terminate through][with panics]: what faults.Applicable offers on
// Postgres at the steps of chaosKinds, less the kinds that hold a lock for a while (lock,
// stmt-timeout, cancel-blocked), and panics but at a rows-next step (elsewhere database/sql
// itself breaks on a panicking driver, whatever the caller does).
var chaosSets = func() (sets [2][2]faultSets) {
	for _, k := range chaosKinds {
		for _, f := range faults.Applicable(k, faults.Postgres) {
			switch f.Kind {
			case faults.KindLock, faults.KindStmtTimeout, faults.KindCancelBlocked:
				continue
			case faults.KindLatency:
				f.Delay = chaosLatency
			}
			for server := range 2 {
				for panics := range 2 {
					if f.Kind == faults.KindTerminate && server == 0 || f.Kind == faults.KindPanic && (panics == 0 || k != faults.StepNext) {
						continue
					}
					sets[server][panics][k] = append(sets[server][panics][k], f)
				}
			}
		}
	}
	return sets
}()

// pgxSet is what a pgx run draws from: faults.ApplicablePgx at the steps of chaosKinds.
var pgxSet = func() (set faultSets) {
	for _, k := range chaosKinds {
		for _, f := range faults.ApplicablePgx(k) {
			if f.Kind == faults.KindLatency {
				f.Delay = chaosLatency
			}
			set[k] = append(set[k], f)
		}
	}
	return set
}()

func (s *faultSets) at(st *faults.Step) []faults.Fault {
	if int(st.Kind) >= len(s) {
		return nil
	}
	return s[st.Kind]
}

// Faults returns the faults a database/sql run draws from at each step (the set of its
// faults.Rate): what faults.Applicable offers on Postgres at a connect, begin, prepare,
// exec, query, next or commit, less the kinds that hold a lock for a while; latency is
// 2ms. With server (a faults.Server, WithServer), terminate is among them; with panics, a
// panic at rows-next steps. The wire kinds need a faults.Wire (WithWire).
func Faults(server, panics bool) faults.FaultSet {
	s := &chaosSets[b2i(server)][b2i(panics)]
	return s.at
}

// PgxFaults returns the faults a pgx run draws from at each step: faults.ApplicablePgx at
// the same steps as Faults.
func PgxFaults() faults.FaultSet { return pgxSet.at }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
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
