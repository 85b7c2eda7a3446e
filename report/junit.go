package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit XML shapes, as CI dashboards (Jenkins, GitLab, GitHub actions) read them.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

func secs(f float64) string { return fmt.Sprintf("%.3f", f) }

// WriteJUnit writes r as JUnit XML: one suite per backend for the matrix cases and one per
// chaos run, whose violations are failed test cases.
func WriteJUnit(w io.Writer, r *Report) error {
	top := junitSuites{Name: "sessionsafe " + r.Command, Time: secs(r.Summary.Seconds)}
	byBackend := map[string]*junitSuite{}
	var order []string
	for _, c := range r.Cases {
		name := "matrix." + c.Backend
		s := byBackend[name]
		if s == nil {
			s = &junitSuite{Name: name}
			byBackend[name] = s
			order = append(order, name)
		}
		jc := junitCase{Name: c.Name, Classname: "sessionsafe.matrix." + c.Backend, Time: secs(c.Seconds)}
		switch c.Status {
		case StatusFail:
			jc.Failure = &junitFailure{Message: firstLine(prefixed(c.Invariant, c.Message)), Type: c.Invariant,
				Body: c.Message + "\nreplay: " + c.Replay}
		case StatusSkip:
			jc.Skipped = &junitSkipped{Message: c.Message}
		}
		s.add(jc, c.Seconds)
	}
	for _, name := range order {
		top.Suites = append(top.Suites, *byBackend[name])
	}
	for _, run := range r.Chaos {
		s := junitSuite{Name: "chaos." + run.Backend, Timestamp: r.Started.Format("2006-01-02T15:04:05")}
		class := "sessionsafe.chaos." + run.Backend
		n := 0
		for _, v := range r.Violations {
			if v.Source != "chaos" || v.Backend != run.Backend {
				continue
			}
			n++
			body := r.lead(v) + v.Message
			if v.Trace != "" {
				body += "\n\ntrace:\n" + v.Trace
			}
			if v.Attribution != "" {
				body += "\n\nacquired at:\n" + v.Attribution
			}
			body += "\n\nreplay: " + v.Replay
			if v.Shrunk != "" {
				body += "\nshrunk: " + v.Shrunk
			}
			s.add(junitCase{Name: v.ID + " " + v.Operation + " " + v.Invariant, Classname: class, Time: "0.000",
				Failure: &junitFailure{Message: firstLine(v.Invariant + ": " + v.Message), Type: v.Invariant, Body: body}}, 0)
		}
		if n == 0 {
			s.add(junitCase{Name: fmt.Sprintf("seed %d, %d workers, %d operations", run.Seed, run.Workers, run.Operations),
				Classname: class, Time: secs(run.Seconds)}, run.Seconds)
		}
		top.Suites = append(top.Suites, s)
	}
	for _, v := range r.Violations {
		if v.Source == "chaos" || v.Source == "matrix" {
			continue
		}
		s := junitSuite{Name: v.Source}
		body := r.lead(v) + v.Message
		if v.Attribution != "" {
			body += "\n\nacquired at:\n" + v.Attribution
		}
		s.add(junitCase{Name: v.ID + " " + v.Operation + " " + v.Invariant, Classname: "sessionsafe." + v.Source, Time: "0.000",
			Failure: &junitFailure{Message: firstLine(v.Invariant + ": " + v.Message), Type: v.Invariant, Body: body + "\nreplay: " + v.Replay}}, 0)
		top.Suites = append(top.Suites, s)
	}
	for _, e := range r.Errors {
		s := junitSuite{Name: "setup"}
		s.add(junitCase{Name: "setup", Classname: "sessionsafe.setup", Time: "0.000",
			Failure: &junitFailure{Message: firstLine(e), Type: "error", Body: e}}, 0)
		top.Suites = append(top.Suites, s)
	}
	if r.Interrupted {
		// A partial run must not read as a clean one: an interrupted run is an error.
		s := junitSuite{Name: "interrupted"}
		msg := "the run was interrupted: this report is partial"
		s.add(junitCase{Name: "interrupted", Classname: "sessionsafe.interrupted", Time: "0.000",
			Error: &junitFailure{Message: msg, Type: "interrupted", Body: msg}}, 0)
		top.Suites = append(top.Suites, s)
	}
	for _, s := range top.Suites {
		top.Tests += s.Tests
		top.Failures += s.Failures
		top.Errors += s.Errors
		top.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(top); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	return nil
}

func (s *junitSuite) add(c junitCase, seconds float64) {
	s.Cases = append(s.Cases, c)
	s.Tests++
	if c.Failure != nil {
		s.Failures++
	}
	if c.Error != nil {
		s.Errors++
	}
	if c.Skipped != nil {
		s.Skipped++
	}
	var total float64
	fmt.Sscanf(s.Time, "%g", &total)
	s.Time = secs(total + seconds)
}

// prefixed returns msg led by "inv: ", unless it is already (a Case's Message is one
// "invariant: message" line per finding).
func prefixed(inv, msg string) string {
	if inv == "" || strings.HasPrefix(msg, inv+": ") {
		return msg
	}
	return inv + ": " + msg
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// lead is what a violation's JUnit body starts with: "root cause (leak)" for a leak, the
// leaks a symptom may follow from, or nothing.
func (r *Report) lead(v Violation) string {
	if KindOf(v) == KindLeak {
		return "root cause (leak): later violations may follow from it\n\n"
	}
	if f := r.followsFrom(v); f != "" {
		return f + "\n\n"
	}
	return ""
}
