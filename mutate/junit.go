package mutate

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// The JUnit XML shapes CI dashboards (Jenkins, GitLab, GitHub actions) read, as the matrix
// report writes them.
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
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
	seconds  float64
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

func secs(f float64) string { return fmt.Sprintf("%.3f", f) }

// WriteJUnit writes the report as JUnit XML: a suite per operator and a test case per mutant,
// named by its id. A survivor is a failure (message: its file:line and what survived; body:
// its diff), a mutant that timed out is an error, one not covered or equivalent is skipped
// with the reason, and a killed mutant passes, naming the test that killed it in its
// system-out.
func (r Report) WriteJUnit(w io.Writer) error {
	top := junitSuites{Name: "sessionsafe mutate", Time: secs(r.Duration.Seconds())}
	by := map[string]*junitSuite{}
	var order []string
	for _, res := range r.Results {
		s := by[res.Operator]
		if s == nil {
			s = &junitSuite{Name: "mutate." + res.Operator}
			by[res.Operator] = s
			order = append(order, res.Operator)
		}
		c := junitCase{Name: res.ID, Classname: "sessionsafe.mutate." + res.Operator, File: res.File, Line: res.Line,
			Time: secs(res.Duration.Seconds())}
		switch res.Status {
		case Survived:
			s.Failures++
			c.Failure = &junitProblem{Message: res.Pos() + ": " + res.Operator + " survived: no test failed with this bug planted",
				Type: string(Survived), Body: res.Diff}
		case TimedOut:
			s.Errors++
			c.Error = &junitProblem{Message: res.Pos() + ": " + res.Reason, Type: string(TimedOut),
				Body: res.Reason + "\ncommand: " + strings.Join(res.Command, " ") + "\n\n" + res.Diff}
		case NotCovered:
			s.Skipped++
			c.Skipped = &junitSkipped{Message: res.Reason}
		case Equivalent:
			s.Skipped++
			c.Skipped = &junitSkipped{Message: "equivalent: " + res.Equivalent}
		case Killed:
			c.SystemOut = "killed by " + res.KilledBy
			if res.Failure != "" {
				c.SystemOut += ": " + res.Failure
			}
		}
		s.Tests++
		s.seconds += res.Duration.Seconds()
		s.Cases = append(s.Cases, c)
	}
	for _, op := range order {
		s := by[op]
		s.Time = secs(s.seconds)
		top.Suites = append(top.Suites, *s)
		top.Tests += s.Tests
		top.Failures += s.Failures
		top.Errors += s.Errors
		top.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("mutate: write junit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(top); err != nil {
		return fmt.Errorf("mutate: write junit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("mutate: write junit report: %w", err)
	}
	return nil
}
