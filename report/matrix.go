package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// FromMatrix returns a finished report of matrix runs of any operations, one
// scenarios.Report per backend as scenarios.Run returns them: a Case per result and a
// Violation per finding. Its command is "matrix"; it finishes now and started the runs'
// total duration earlier. To name the command, keep its arguments or add chaos runs, build
// the report with New, AddMatrix and Finish instead.
func FromMatrix(runs ...scenarios.Report) *Report {
	var total time.Duration
	for _, run := range runs {
		total += run.Duration
	}
	finished := time.Now()
	r := New("matrix", nil, 0, finished.Add(-total))
	for _, run := range runs {
		r.AddMatrix(run)
	}
	r.Finish(finished)
	return r
}

// AddMatrix adds every result of one matrix run (one backend) to r, as AddResult does,
// and names the run's backend even when it has no result. Call Finish afterwards.
func (r *Report) AddMatrix(run scenarios.Report) {
	r.Backends = append(r.Backends, run.Backend.String())
	for _, res := range run.Results {
		r.AddResult(res)
	}
}

// AddResult adds one matrix case to r: a Case (failed when the result has findings, its
// Replay the findings' replay command) and a Violation per finding, numbered after those
// already in r. Call Finish afterwards.
func (r *Report) AddResult(res scenarios.Result) {
	c := res.Case
	rc := Case{
		Name: c.Name(), Backend: c.Backend.String(), Operation: c.Operation, Step: c.Step,
		StepKind: c.StepName(), Fault: c.FaultName(), Status: StatusPass, Fired: res.Fired,
		Seconds: res.Duration.Seconds(),
		Phases: Phases{Setup: res.Phases.Setup.Seconds(), Connect: res.Phases.Connect.Seconds(), Run: res.RunTime.Seconds(),
			Checks: res.Phases.Checks.Seconds(), Session: res.Phases.Session.Seconds()},
	}
	var invs, msgs []string
	// The case's message leads with what it left behind: a symptom (an unexpected error,
	// a wrong state) may follow from it.
	for _, f := range leaksFirst(res.Findings) {
		invs = append(invs, string(f.Invariant))
		msgs = append(msgs, string(f.Invariant)+": "+f.Message)
		if rc.Replay == "" {
			rc.Replay = f.Replay
		}
	}
	seq := int64(len(r.Cases) + 1) // one run: its findings were all there at once
	for _, f := range res.Findings {
		n := len(r.Violations) + 1
		r.Violations = append(r.Violations, Violation{
			ID: fmt.Sprintf("V%d", n), Source: "matrix", Backend: c.Backend.String(),
			Operation: c.Operation, Step: c.Step, StepKind: c.StepName(), Fault: c.FaultName(),
			Invariant: string(f.Invariant), Message: f.Message, Trace: f.Trace, Replay: f.Replay,
			Seq: seq, Scope: c.String(),
		})
	}
	if len(res.Findings) > 0 {
		rc.Status = StatusFail
		rc.Invariant = strings.Join(invs, ",")
		rc.Message = strings.Join(msgs, "\n")
	}
	r.Cases = append(r.Cases, rc)
}

// leaksFirst returns fs with the findings about something left behind first, each group in
// its order.
func leaksFirst(fs []scenarios.Finding) []scenarios.Finding {
	out := make([]scenarios.Finding, 0, len(fs))
	for _, leak := range []bool{true, false} {
		for _, f := range fs {
			if LeakInvariant(string(f.Invariant)) == leak {
				out = append(out, f)
			}
		}
	}
	return out
}
