package mutate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// SchemaV1 names the JSON schema of a Report. Fields are only ever added under it.
const SchemaV1 = "sessionsafe/mutate/v1"

// Report is the outcome of a Run.
type Report struct {
	// Schema is SchemaV1.
	Schema string `json:"schema"`
	// Started is when the run began; Duration how long it took in all.
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	// Shard is "i/n" when the run was one shard of the mutants.
	Shard string `json:"shard,omitempty"`
	// Parallel is how many mutants ran at once.
	Parallel int `json:"parallel"`
	// Clean is each distinct test command's run without mutants, which sets its timeout.
	Clean []CleanRun `json:"clean"`
	// Summary counts the results by status.
	Summary Summary `json:"summary"`
	// Operators counts the results by operator, in the order of Operators(), then PatchOperator.
	Operators []OperatorSummary `json:"operators"`
	// Results is one entry per mutant run, in the order given to Run.
	Results []Result `json:"results"`
}

// CleanRun is one test command run without any mutant.
type CleanRun struct {
	// Command is the command line.
	Command []string `json:"command"`
	// Duration is how long it took.
	Duration time.Duration `json:"duration_ns"`
}

// Summary counts mutants by status.
type Summary struct {
	// Total is the number of mutants with a result.
	Total int `json:"total"`
	// Killed, Survived, Equivalent, TimedOut and NotCovered count each status.
	Killed     int `json:"killed"`
	Survived   int `json:"survived"`
	Equivalent int `json:"equivalent"`
	TimedOut   int `json:"timed_out"`
	NotCovered int `json:"not_covered"`
}

// OperatorSummary counts one operator's mutants by status.
type OperatorSummary struct {
	// Operator is the operator's id.
	Operator string `json:"operator"`
	Summary
}

func (s *Summary) count(st Status) {
	s.Total++
	switch st {
	case Killed:
		s.Killed++
	case Survived:
		s.Survived++
	case Equivalent:
		s.Equivalent++
	case TimedOut:
		s.TimedOut++
	case NotCovered:
		s.NotCovered++
	}
}

// counts is the summary in words: "30 mutants: 27 killed, 0 survived, ...".
func (s Summary) counts() string {
	return fmt.Sprintf("%d mutants: %d killed, %d survived, %d equivalent, %d timed out, %d not covered",
		s.Total, s.Killed, s.Survived, s.Equivalent, s.TimedOut, s.NotCovered)
}

func (r *Report) summarize() {
	r.Summary = Summary{}
	by := map[string]*Summary{}
	for _, res := range r.Results {
		r.Summary.count(res.Status)
		if by[res.Operator] == nil {
			by[res.Operator] = &Summary{}
		}
		by[res.Operator].count(res.Status)
	}
	r.Operators = nil
	for _, op := range append(operatorIDs(), PatchOperator) {
		if s := by[op]; s != nil {
			r.Operators = append(r.Operators, OperatorSummary{Operator: op, Summary: *s})
		}
	}
}

// WriteJSON writes the report as indented JSON (schema SchemaV1).
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("mutate: write json report: %w", err)
	}
	return nil
}

// WriteText writes the kill table (operator × status), then every survivor with its site and
// diff, the equivalent mutants with their reasons, the killed mutants whose equivalence
// directive is stale, and the mutants that timed out or were not covered, with the reason.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "operator\tmutants\tkilled\tsurvived\tequivalent\ttimed-out\tnot-covered")
	row := func(name string, s Summary) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", name, s.Total, s.Killed, s.Survived, s.Equivalent, s.TimedOut, s.NotCovered)
	}
	for _, o := range r.Operators {
		row(o.Operator, o.Summary)
	}
	row("total", r.Summary)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("mutate: write text report: %w", err)
	}
	var surv, equiv, stale, other []Result
	for _, res := range r.Results {
		switch res.Status {
		case Survived:
			surv = append(surv, res)
		case Equivalent:
			equiv = append(equiv, res)
		case Killed:
			if res.Equivalent != "" {
				stale = append(stale, res)
			}
		case TimedOut, NotCovered:
			other = append(other, res)
		}
	}
	if len(surv) > 0 {
		fmt.Fprintf(w, "\nsurvivors (%d): no test failed with these bugs planted\n", len(surv))
		for _, res := range surv {
			fmt.Fprintf(w, "\n%s  %s\n", res.Pos(), res.Operator)
			for _, l := range strings.Split(strings.TrimRight(res.Diff, "\n"), "\n") {
				fmt.Fprintln(w, "    "+l)
			}
		}
	}
	if len(equiv) > 0 {
		fmt.Fprintf(w, "\nequivalent (%d): survived, and the source says why no test can catch them\n", len(equiv))
		for _, res := range equiv {
			fmt.Fprintf(w, "  %s  %s: %s\n", res.Pos(), res.Operator, res.Equivalent)
		}
	}
	if len(stale) > 0 {
		fmt.Fprintf(w, "\nkilled, though marked equivalent (%d): remove the %s directive\n", len(stale), EquivalentDirective)
		for _, res := range stale {
			fmt.Fprintf(w, "  %s  %s: killed by %s\n", res.Pos(), res.Operator, res.KilledBy)
		}
	}
	if len(other) > 0 {
		fmt.Fprintf(w, "\nnot judged (%d):\n", len(other))
		for _, res := range other {
			fmt.Fprintf(w, "  %s  %s  %s: %s\n", res.Pos(), res.Operator, res.Status, res.Reason)
		}
	}
	_, err := fmt.Fprintf(w, "\n%s (%s)\n", r.Summary.counts(), r.Duration.Round(time.Second))
	return err
}
