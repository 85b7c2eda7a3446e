package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/redact"
)

// Schema names the version of the JSON layout; it changes only when a field is removed or
// changes meaning (new fields may be added without a new version).
const Schema = "sessionsafe/report/v1"

// Case status values.
const (
	StatusPass = "pass"
	StatusFail = "fail"
	StatusSkip = "skip"
)

// Report is the whole result of one run of the CLI.
type Report struct {
	Schema      string      `json:"schema"`
	Command     string      `json:"command"`
	Args        []string    `json:"args"`
	Seed        int64       `json:"seed"`
	Started     time.Time   `json:"started"`
	Finished    time.Time   `json:"finished"`
	Interrupted bool        `json:"interrupted"`
	Backends    []string    `json:"backends"`
	Summary     Summary     `json:"summary"`
	Cases       []Case      `json:"cases"`
	Chaos       []ChaosRun  `json:"chaos"`
	Violations  []Violation `json:"violations"`
	Errors      []string    `json:"errors"`
}

// Summary is the headline count of a report.
type Summary struct {
	Cases      int     `json:"cases"`
	Passed     int     `json:"passed"`
	Failed     int     `json:"failed"`
	Skipped    int     `json:"skipped"`
	Operations int64   `json:"operations"`
	Faults     int64   `json:"faults"` // faults that fired: one per matrix case that fired, plus the chaos runs'
	Violations int     `json:"violations"`
	Seconds    float64 `json:"seconds"`
	// Interrupted repeats Report.Interrupted where a reader of the counts looks: the
	// counts are of a partial run.
	Interrupted bool `json:"interrupted"`
}

// Case is one matrix case: an operation run with one fault at one step on one backend.
type Case struct {
	Name      string  `json:"name"`
	Backend   string  `json:"backend"`
	Operation string  `json:"operation"`
	Step      int     `json:"step"`
	StepKind  string  `json:"step_kind"`
	Fault     string  `json:"fault"`
	Status    string  `json:"status"`
	Fired     bool    `json:"fired"` // the case's fault fired (the clean case has none)
	Invariant string  `json:"invariant,omitempty"`
	Message   string  `json:"message,omitempty"`
	Replay    string  `json:"replay,omitempty"`
	Seconds   float64 `json:"seconds"`
	// Phases splits Seconds by what the case did (scenarios.Phases, and the run).
	Phases Phases `json:"phases"`
}

// Phases is where a case's time went, in seconds: fresh state, readying its pool, the
// operation itself, the leak checks and state read-back, the session-state check.
type Phases struct {
	Setup   float64 `json:"setup"`
	Connect float64 `json:"connect"`
	Run     float64 `json:"run"`
	Checks  float64 `json:"checks"`
	Session float64 `json:"session"`
}

// ChaosRun is the outcome of one chaos run on one backend.
type ChaosRun struct {
	Backend     string  `json:"backend"`
	Provider    string  `json:"provider,omitempty"`
	Seed        int64   `json:"seed"`
	Workers     int     `json:"workers"`
	Operations  int64   `json:"operations"`
	Errors      int64   `json:"errors"`
	Faults      int64   `json:"faults"`
	Terminated  int64   `json:"terminated"`
	Restarts    int64   `json:"restarts"`
	Pauses      int64   `json:"pauses"`
	Acked       int64   `json:"acked_writes"`
	Ambiguous   int64   `json:"ambiguous_writes"`
	Violations  int     `json:"violations"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	Interrupted bool    `json:"interrupted"`
}

// Violation is one broken invariant, with what is needed to see it again.
type Violation struct {
	ID          string `json:"id"`
	Source      string `json:"source"` // "matrix" or "chaos"
	Backend     string `json:"backend"`
	Operation   string `json:"operation"`
	Step        int    `json:"step"`
	StepKind    string `json:"step_kind"`
	Fault       string `json:"fault"`
	Invariant   string `json:"invariant"`
	Message     string `json:"message"`
	Trace       string `json:"trace,omitempty"`
	Attribution string `json:"attribution,omitempty"`
	Seed        int64  `json:"seed"`
	Replay      string `json:"replay"`
	Shrunk      string `json:"shrunk,omitempty"` // the shrunk replay command, when shrinking ran
	// Kind is KindLeak (something left behind: a root cause) or KindSymptom; Finish sets
	// it from the Invariant when empty (KindOf), and puts every leak before every symptom.
	Kind string `json:"kind,omitempty"`
	// Seq is when the run saw the violation: any number that grows over the run (a
	// counter, time.Time.UnixNano), the same for the findings of one run of an operation
	// (a leak is found by the checks after the run, yet was there during it); 0 when
	// unknown (the order of Violations is taken then). A leak seen no later than a symptom
	// may be its cause.
	Seq int64 `json:"seq,omitempty"`
	// Scope names where a leak can do harm and where a symptom was seen: a matrix case, a
	// chaos worker's pool, a probe's goroutine. A leak with an empty Scope (a lock, which
	// every session meets) reaches every scope of its backend.
	Scope string `json:"scope,omitempty"`
	// CausedBy lists the IDs of the leaks a symptom may follow from: set by the producer
	// when it knows (the session that held the lock it waited for), otherwise by Finish
	// (RootCausesFirst): the leaks seen before it in its scope.
	CausedBy []string `json:"caused_by,omitempty"`
}

// New returns an empty report for command with the schema set.
func New(command string, args []string, seed int64, started time.Time) *Report {
	return &Report{
		Schema:  Schema,
		Command: command,
		Args:    redact.Args(args),
		Seed:    seed,
		Started: started.UTC(),
	}
}

// Finish sets the finish time, sorts cases into a stable order and the violations root
// causes first (RootCausesFirst), redacts every free-text field, and computes the summary.
// It may be called more than once.
func (r *Report) Finish(finished time.Time) {
	r.Finished = finished.UTC()
	sort.SliceStable(r.Cases, func(i, j int) bool {
		a, b := r.Cases[i], r.Cases[j]
		if a.Backend != b.Backend {
			return a.Backend < b.Backend
		}
		if a.Operation != b.Operation {
			return a.Operation < b.Operation
		}
		if a.Step != b.Step {
			return a.Step < b.Step
		}
		return a.Fault < b.Fault
	})
	s := Summary{Cases: len(r.Cases)}
	for i := range r.Cases {
		c := &r.Cases[i]
		c.Message = redact.Text(c.Message)
		c.Replay = redact.Text(c.Replay)
		if c.Fired {
			s.Faults++
		}
		switch c.Status {
		case StatusPass:
			s.Passed++
		case StatusFail:
			s.Failed++
		default:
			s.Skipped++
		}
	}
	for i := range r.Chaos {
		s.Operations += r.Chaos[i].Operations
		s.Faults += r.Chaos[i].Faults
	}
	for i := range r.Violations {
		v := &r.Violations[i]
		v.Message = redact.Text(v.Message)
		v.Trace = redact.Text(v.Trace)
		v.Attribution = redact.Text(v.Attribution)
		v.Replay = redact.Text(v.Replay)
		v.Shrunk = redact.Text(v.Shrunk)
	}
	RootCausesFirst(r.Violations)
	for i := range r.Errors {
		r.Errors[i] = redact.Text(r.Errors[i])
	}
	s.Violations = len(r.Violations)
	s.Interrupted = r.Interrupted
	if !r.Started.IsZero() && !r.Finished.IsZero() {
		s.Seconds = r.Finished.Sub(r.Started).Seconds()
	}
	r.Summary = s
	seen := map[string]bool{}
	var backends []string
	for _, b := range r.Backends {
		if !seen[b] {
			seen[b] = true
			backends = append(backends, b)
		}
	}
	for _, c := range r.Cases {
		if !seen[c.Backend] {
			seen[c.Backend] = true
			backends = append(backends, c.Backend)
		}
	}
	for _, c := range r.Chaos {
		if !seen[c.Backend] {
			seen[c.Backend] = true
			backends = append(backends, c.Backend)
		}
	}
	sort.Strings(backends)
	r.Backends = backends
}

// Failed reports whether the report holds any violation or failed case.
func (r *Report) Failed() bool {
	if len(r.Violations) > 0 {
		return true
	}
	for _, c := range r.Cases {
		if c.Status == StatusFail {
			return true
		}
	}
	return false
}

// Sentence is the report in one line a person reads at a glance, led by the command:
// "matrix: 1079 cases, 1063 faults, 0 violations, 3.2s" or "chaos: 69001 operations, 51675
// faults, 0 violations, 20.0s, interrupted". Call it after Finish.
func (r *Report) Sentence() string {
	s := r.Summary
	var parts []string
	if s.Cases > 0 || len(r.Chaos) == 0 {
		parts = append(parts, plural(int64(s.Cases), "case", "cases"))
	}
	if len(r.Chaos) > 0 {
		parts = append(parts, plural(s.Operations, "operation", "operations"))
	}
	parts = append(parts, plural(s.Faults, "fault", "faults"), plural(int64(s.Violations), "violation", "violations"))
	if s.Failed > s.Violations {
		parts = append(parts, plural(int64(s.Failed), "failed case", "failed cases"))
	}
	parts = append(parts, fmt.Sprintf("%.1fs", s.Seconds))
	if len(r.Errors) > 0 {
		parts = append(parts, plural(int64(len(r.Errors)), "error", "errors"))
	}
	if r.Interrupted {
		parts = append(parts, "interrupted")
	}
	return r.Command + ": " + strings.Join(parts, ", ")
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
