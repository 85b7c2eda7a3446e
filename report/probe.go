package report

import (
	"fmt"

	"github.com/sessionsafe/sessionsafe/probes"
)

// AddProbe adds the findings of one probe run (probes.PoolOfOne,
// probes.Concurrent) to r as violations of Source "probe" on backend
// "postgres": each finding about something left behind a root cause
// (KindLeak, its stack as the Attribution), and each collateral failure
// linked (CausedBy) to the leaks of the goroutine that held what it waited
// for, in the same round. Call Finish afterwards.
func (r *Report) AddProbe(res probes.Result) {
	type runKey struct{ round, goroutine int }
	ids := make([]string, len(res.Findings))
	leaks := map[runKey][]string{}
	for i, f := range res.Findings {
		ids[i] = fmt.Sprintf("V%d", len(r.Violations)+i+1)
		if f.Leak {
			k := runKey{f.Round, f.Goroutine}
			leaks[k] = append(leaks[k], ids[i])
		}
	}
	r.Backends = append(r.Backends, "postgres")
	for i, f := range res.Findings {
		v := Violation{
			ID: ids[i], Source: "probe", Backend: "postgres", Operation: f.Operation, Invariant: f.Check,
			Message: probeWhere(f) + f.Message, Attribution: f.Stack, Seed: f.Seed, Replay: f.Replay,
			Kind: KindSymptom, Seq: int64(f.Round + 1), Scope: res.Probe + " " + res.Operation,
		}
		if f.Leak {
			v.Kind = KindLeak
		}
		if f.Check == probes.CheckCollateral && f.Holder >= 0 {
			v.CausedBy = append(v.CausedBy, leaks[runKey{f.Round, f.Holder}]...)
		}
		r.Violations = append(r.Violations, v)
	}
}

// probeWhere is how a probe violation's message starts: "probe concurrent,
// round 0, goroutine 2: ".
func probeWhere(f probes.Finding) string {
	s := "probe " + f.Probe
	if f.Probe == probes.ProbeConcurrent {
		s += fmt.Sprintf(", round %d", f.Round)
	}
	if f.Goroutine >= 0 {
		s += fmt.Sprintf(", goroutine %d", f.Goroutine)
	}
	return s + ": "
}
