package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/sessionsafe/sessionsafe/report"
)

// finish completes rep, writes the report files, prints the summary and returns the exit code.
func finish(e *env, o *options, rep *report.Report) int {
	rep.Finish(e.now())
	paths, err := report.Write(rep, o.reportPaths())
	s := rep.Summary
	fmt.Fprintln(e.stdout)
	head := e.prog + " " + rep.Command + ":"
	if o.seedSet || rep.Command == "chaos" {
		head += fmt.Sprintf(" seed %d,", rep.Seed)
	}
	if len(rep.Backends) > 0 {
		head += " backends " + strings.Join(rep.Backends, ", ")
	}
	fmt.Fprintln(e.stdout, strings.TrimSuffix(head, ","))
	if s.Cases > 0 {
		fmt.Fprintf(e.stdout, "  matrix: %d cases, %d passed, %d failed, %d skipped, %d faults fired\n", s.Cases, s.Passed, s.Failed, s.Skipped, s.Faults)
	}
	for _, c := range rep.Chaos {
		fmt.Fprintf(e.stdout, "  chaos %s: %d workers, %d operations (%.0f/s), %d faults, %d backends killed, %d restarts, %d pauses, %d acked writes checked (%d ambiguous), %d violations\n",
			c.Backend, c.Workers, c.Operations, c.OpsPerSec, c.Faults, c.Terminated, c.Restarts, c.Pauses, c.Acked, c.Ambiguous, c.Violations)
	}
	for _, v := range rep.Violations {
		fmt.Fprintf(e.stdout, "  VIOLATION %s [%s] %s: %s\n", v.ID, v.Backend, v.Invariant, firstLine(v.Message))
		if v.Shrunk != "" {
			fmt.Fprintf(e.stdout, "    replay (shrunk): %s\n", v.Shrunk)
		} else if v.Replay != "" {
			fmt.Fprintf(e.stdout, "    replay: %s\n", v.Replay)
		}
	}
	for _, msg := range rep.Errors {
		fmt.Fprintf(e.stdout, "  ERROR %s\n", oneLine(msg))
	}
	for _, p := range paths {
		fmt.Fprintf(e.stdout, "  report: %s\n", p)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "%s %s: %s\n", e.prog, rep.Command, err)
		return exitUsage
	}
	switch {
	case rep.Interrupted:
		// Before FAIL: a partial run must say so, and its exit code stops what follows it
		// (make chaos does not start the chaos run after an interrupted matrix).
		if rep.Failed() {
			fmt.Fprintf(e.stdout, "INTERRUPTED: partial report written; %d violation(s) found before the interrupt\n", len(rep.Violations))
		} else {
			fmt.Fprintln(e.stdout, "INTERRUPTED: partial report written; no violation so far")
		}
		return exitUsage
	case rep.Failed():
		fmt.Fprintf(e.stdout, "FAIL: %d violation(s)\n", len(rep.Violations))
		return exitViolations
	case len(rep.Errors) > 0:
		fmt.Fprintln(e.stdout, "ERROR: the run could not complete")
		return exitUsage
	case rep.Command == "replay":
		fmt.Fprintln(e.stdout, "NOT REPRODUCED: replay did not reproduce the violation: the rerun passed")
		return exitNotReproduced
	}
	fmt.Fprintln(e.stdout, "PASS: no violation")
	return exitOK
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// runSummary prints a report file as one sentence: "matrix: 1079 cases, 1063 faults, 0
// violations, 3.2s". make chaos prints its summary with it.
func runSummary(_ context.Context, o *options, e *env) int {
	if len(o.files) == 0 {
		fmt.Fprintf(e.stderr, "%s summary: want one or more report.json files\n", e.prog)
		return exitUsage
	}
	code := exitOK
	for _, path := range o.files {
		rep, err := report.ReadJSON(path)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s summary: %s\n", e.prog, oneLine(err.Error()))
			code = exitUsage
			continue
		}
		fmt.Fprintln(e.stdout, rep.Sentence())
	}
	return code
}
