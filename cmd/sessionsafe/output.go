package main

import (
	"fmt"
	"strings"

	"github.com/sessionsafe/sessionsafe/internal/report"
)

// finish completes rep, writes the report files, prints the summary and returns the exit code.
func finish(e *env, o *options, rep *report.Report) int {
	rep.Finish(e.now())
	paths, err := report.Write(rep, o.reportPaths())
	s := rep.Summary
	fmt.Fprintln(e.stdout)
	head := "sessionsafe " + rep.Command + ":"
	if o.seedSet || rep.Command == "chaos" {
		head += fmt.Sprintf(" seed %d,", rep.Seed)
	}
	if len(rep.Backends) > 0 {
		head += " backends " + strings.Join(rep.Backends, ", ")
	}
	fmt.Fprintln(e.stdout, strings.TrimSuffix(head, ","))
	if s.Cases > 0 {
		fmt.Fprintf(e.stdout, "  matrix: %d cases, %d passed, %d failed, %d skipped\n", s.Cases, s.Passed, s.Failed, s.Skipped)
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
		fmt.Fprintf(e.stdout, "  ERROR %s\n", firstLine(msg))
	}
	for _, p := range paths {
		fmt.Fprintf(e.stdout, "  report: %s\n", p)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sessionsafe %s: %s\n", rep.Command, err)
		return exitUsage
	}
	switch {
	case rep.Failed():
		fmt.Fprintf(e.stdout, "FAIL: %d violation(s)\n", len(rep.Violations))
		return exitViolations
	case rep.Interrupted:
		fmt.Fprintln(e.stdout, "INTERRUPTED: partial report written")
		return exitUsage
	case len(rep.Errors) > 0:
		fmt.Fprintln(e.stdout, "ERROR: the run could not complete")
		return exitUsage
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
