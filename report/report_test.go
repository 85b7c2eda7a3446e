package report_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/scenarios"

	"github.com/sessionsafe/sessionsafe/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sample is a fixed report covering every section: two backends, a failed case, a chaos run
// with a violation, and passwords that must not survive.
func sample() *report.Report {
	start := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	r := report.New("chaos", []string{"-dsn", "postgres://app:s3cret@db:5432/app", "-seed", "42"}, 42, start)
	r.Cases = []report.Case{
		{Name: "UpdateThread/step-3-commit/pgerr=40001", Backend: "sqlmock", Operation: "UpdateThread", Step: 3, StepKind: "commit", Fault: "pgerr=40001", Status: report.StatusPass, Fired: true, Seconds: 0.01},
		{Name: "UpdateThread/step-3-commit/badconn", Backend: "postgres", Operation: "UpdateThread", Step: 3, StepKind: "commit", Fault: "badconn", Status: report.StatusFail, Fired: true,
			Invariant: "pool", Message: "1 connection still in use", Replay: "sessionsafe replay -case 'UpdateThread/step-3-commit/badconn' -backend postgres", Seconds: 0.02},
		{Name: "UpdateThread/step-1-begin/badconn", Backend: "postgres", Operation: "UpdateThread", Step: 1, StepKind: "begin", Fault: "badconn", Status: report.StatusSkip, Message: "not applicable"},
		{Name: "GetThread/step-2-query/cancel", Backend: "sqlmock", Operation: "GetThread", Step: 2, StepKind: "query", Fault: "cancel", Status: report.StatusPass},
	}
	r.Chaos = []report.ChaosRun{{Backend: "postgres", Provider: "local", Seed: 42, Workers: 8, Operations: 1000, Errors: 40, Faults: 55, Terminated: 3, Acked: 400, Ambiguous: 1, Violations: 1, Seconds: 10, OpsPerSec: 100}}
	r.Violations = []report.Violation{
		{ID: "V1", Source: "matrix", Backend: "postgres", Operation: "UpdateThread", Step: 3, StepKind: "commit", Fault: "badconn", Invariant: "pool", Message: "1 connection still in use", Replay: "sessionsafe replay -case 'UpdateThread/step-3-commit/badconn' -backend postgres"},
		{ID: "V2", Source: "chaos", Backend: "postgres", Operation: "GetMessages", Step: 4, StepKind: "next", Fault: "error", Invariant: "pool",
			Message: "connection held after the operation returned (dsn postgres://app:s3cret@db:5432/app password=s3cret)", Trace: "1 connect\n2 begin\n3 query\n4 next <- error",
			Attribution: "handlers.(*Service).GetMessages\n\thandlers/messages.go:40", Seed: 49, Replay: "sessionsafe replay -seed 42 -workers 8", Shrunk: "sessionsafe replay -seed 49 -workers 1 -ops 3"},
	}
	r.Finish(start.Add(12 * time.Second))
	return r
}

// TestSummaryCountsFiredMatrixFaults: a matrix case whose fault fired is a fault injected,
// besides the chaos runs' faults.
func TestSummaryCountsFiredMatrixFaults(t *testing.T) {
	tests := []struct {
		name  string
		cases []report.Case
		chaos []report.ChaosRun
		want  int64
	}{
		{"none", nil, nil, 0},
		{"matrix", []report.Case{{Fired: true}, {Fired: true}, {Fired: false}}, nil, 2},
		{"chaos", nil, []report.ChaosRun{{Faults: 7}}, 7},
		{"both", []report.Case{{Fired: true}}, []report.ChaosRun{{Faults: 7}}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report.New("matrix", nil, 0, time.Unix(0, 0))
			r.Cases, r.Chaos = tt.cases, tt.chaos
			r.Finish(time.Unix(1, 0))
			if r.Summary.Faults != tt.want {
				t.Errorf("Summary.Faults: got %d; want %d", r.Summary.Faults, tt.want)
			}
			var buf bytes.Buffer
			if err := report.WriteHTML(&buf, r); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("<td>%d</td><td>0</td></tr>", tt.want); !strings.Contains(buf.String(), want) {
				t.Errorf("HTML summary row lacks faults injected %d (%s)", tt.want, want)
			}
		})
	}
}

func TestJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.golden.json")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file: %v (run go test ./report -update to create it)", err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("json report mismatch (-want +got):\n-%s\n+%s\nrun go test ./report -run TestJSONGolden -update if the change is intended (and bump report.Schema if a field changed meaning)", want, got)
	}
	var back report.Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("json report does not parse: %v", err)
	}
	if back.Schema != report.Schema || back.Summary.Violations != 2 || back.Summary.Failed != 1 || back.Summary.Passed != 2 {
		t.Errorf("parsed summary = %+v (schema %q); want 2 violations, 1 failed, 2 passed", back.Summary, back.Schema)
	}
}

func TestJSONEmptyListsAreArrays(t *testing.T) {
	r := report.New("matrix", nil, 1, time.Unix(0, 0))
	r.Finish(time.Unix(1, 0))
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"cases": []`, `"violations": []`, `"chaos": []`, `"args": []`} {
		if !strings.Contains(buf.String(), field) {
			t.Errorf("json report lacks %s:\n%s", field, buf.String())
		}
	}
}

func TestJUnitParses(t *testing.T) {
	var buf bytes.Buffer
	if err := report.WriteJUnit(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Tests int    `xml:"tests,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("junit report does not parse: %v\n%s", err, buf.String())
	}
	if doc.Tests != 5 || doc.Failures != 2 || doc.Skipped != 1 {
		t.Errorf("junit totals: tests=%d failures=%d skipped=%d; want 5, 2, 1\n%s", doc.Tests, doc.Failures, doc.Skipped, buf.String())
	}
	var names []string
	for _, s := range doc.Suites {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "matrix.postgres,matrix.sqlmock,chaos.postgres"; got != want {
		t.Errorf("junit suites = %s; want %s", got, want)
	}
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("junit report leaks the password:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "shrunk: sessionsafe replay -seed 49 -workers 1 -ops 3") {
		t.Errorf("junit report lacks the shrunk replay command:\n%s", buf.String())
	}
}

func TestHTMLSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		`<table class="grid" data-operation="UpdateThread">`,
		`class="cell fail"`, `class="cell pass"`, `class="cell skip"`,
		`href="#v-V1"`, `id="v-V2"`, `sessionsafe replay -seed 49 -workers 1 -ops 3`,
		`class="banner bad"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("html report lacks %q", want)
		}
	}
	for _, bad := range []string{"s3cret", "<script", "src=\"http", "href=\"http", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("html report contains %q (a leaked password or an external resource)", bad)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	written, err := report.Write(sample(), report.InDir(filepath.Join(dir, "out")))
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 3 {
		t.Fatalf("wrote %v; want three files", written)
	}
	for _, p := range written {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("report file %s: %v (size %v)", p, err, st)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "out", ".report-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestInterruptedSaysSoEverywhere: a partial run reads as one in every format: the JSON
// summary, the JUnit counts (an error, not failures="0" alone), the HTML banner and the
// one-line sentence.
func TestInterruptedSaysSoEverywhere(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", interrupted), func(t *testing.T) {
			r := report.New("chaos", nil, 1, time.Unix(0, 0))
			r.Chaos = []report.ChaosRun{{Backend: "sqlmock", Operations: 69001, Faults: 51675, Interrupted: interrupted}}
			r.Interrupted = interrupted
			r.Finish(time.Unix(20, 0))

			var js bytes.Buffer
			if err := report.WriteJSON(&js, r); err != nil {
				t.Fatal(err)
			}
			var back struct {
				Summary struct{ Interrupted bool }
			}
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if back.Summary.Interrupted != interrupted {
				t.Errorf("json summary interrupted: got %v; want %v", back.Summary.Interrupted, interrupted)
			}

			var ju bytes.Buffer
			if err := report.WriteJUnit(&ju, r); err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Errors int `xml:"errors,attr"`
			}
			if err := xml.Unmarshal(ju.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[interrupted]; doc.Errors != want || strings.Contains(ju.String(), `name="interrupted"`) != interrupted {
				t.Errorf("junit: errors=%d, interrupted testcase %v; want errors=%d and the testcase only when interrupted:\n%s",
					doc.Errors, strings.Contains(ju.String(), `name="interrupted"`), want, ju.String())
			}

			var h bytes.Buffer
			if err := report.WriteHTML(&h, r); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(h.String(), "interrupted: partial report"); got != interrupted {
				t.Errorf("html banner says interrupted: %v; want %v", got, interrupted)
			}

			want := "chaos: 69001 operations, 51675 faults, 0 violations, 20.0s"
			if interrupted {
				want += ", interrupted"
			}
			if got := r.Sentence(); got != want {
				t.Errorf("Sentence: got %q; want %q", got, want)
			}
		})
	}
}

func TestSentence(t *testing.T) {
	tests := []struct {
		name string
		edit func(*report.Report)
		want string
	}{
		{"empty-matrix", func(*report.Report) {}, "matrix: 0 cases, 0 faults, 0 violations, 3.2s"},
		{"matrix", func(r *report.Report) {
			r.Cases = []report.Case{{Status: report.StatusPass, Fired: true}, {Status: report.StatusFail}}
			r.Violations = []report.Violation{{ID: "V1"}}
		}, "matrix: 2 cases, 1 fault, 1 violation, 3.2s"},
		{"errors", func(r *report.Report) { r.Errors = []string{"postgres: no postgres available"} }, "matrix: 0 cases, 0 faults, 0 violations, 3.2s, 1 error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report.New("matrix", nil, 0, time.Unix(0, 0))
			tt.edit(r)
			r.Finish(time.Unix(3, 2e8))
			if got := r.Sentence(); got != tt.want {
				t.Errorf("Sentence: got %q; want %q", got, tt.want)
			}
		})
	}
}

// TestFromMatrix: a matrix run of any operation becomes cases and violations, numbered in
// order across backends, with each failed case's replay command; a backend with no case is
// still named.
func TestFromMatrix(t *testing.T) {
	caseOf := func(b faults.Backend, step int, kind faults.StepKind, f faults.Fault) scenarios.Case {
		return scenarios.Case{Backend: b, Operation: "Transfer", Step: step, StepKind: kind, Fault: f}
	}
	bad := caseOf(scenarios.Sqlmock, 4, faults.StepCommit, faults.Fault{Kind: faults.KindBadConn})
	mock := scenarios.Report{Backend: scenarios.Sqlmock, Duration: time.Second, Results: []scenarios.Result{
		{Case: caseOf(scenarios.Sqlmock, 0, scenarios.StepClean, faults.Fault{}), Duration: 10 * time.Millisecond},
		{Case: bad, Fired: true, Duration: 20 * time.Millisecond, RunTime: 5 * time.Millisecond,
			Phases: scenarios.Phases{Setup: time.Millisecond, Connect: 2 * time.Millisecond, Checks: 3 * time.Millisecond, Session: 4 * time.Millisecond},
			Findings: []scenarios.Finding{
				// found in this order: the symptom first, the leak by the checks after the run
				{Case: bad, Invariant: scenarios.InvErrorSurfaced, Message: "got nil error", Replay: "go test ./bank -run X"},
				{Case: bad, Invariant: scenarios.InvPool, Message: "1 connection still in use", Replay: "go test ./bank -run X"},
			}},
	}}
	pg := scenarios.Report{Backend: scenarios.Postgres}
	r := report.FromMatrix(mock, pg)

	if got, want := strings.Join(r.Backends, ","), "postgres,sqlmock"; got != want {
		t.Errorf("Backends: got %s; want %s", got, want)
	}
	if r.Command != "matrix" || r.Summary.Cases != 2 || r.Summary.Failed != 1 || r.Summary.Violations != 2 || r.Summary.Faults != 1 {
		t.Errorf("command %q, summary %+v; want matrix, 2 cases, 1 failed, 2 violations, 1 fault", r.Command, r.Summary)
	}
	if got := r.Summary.Seconds; got < 0.99 || got > 1.01 {
		t.Errorf("Summary.Seconds: got %v; want the runs' 1s", got)
	}
	c := r.Cases[1]
	want := report.Case{Name: "Transfer/step-4-commit/badconn", Backend: "sqlmock", Operation: "Transfer", Step: 4, StepKind: "commit",
		Fault: "badconn", Status: report.StatusFail, Fired: true, Invariant: "pool,error-surfaced",
		Message: "pool: 1 connection still in use\nerror-surfaced: got nil error", Replay: "go test ./bank -run X", Seconds: 0.02,
		Phases: report.Phases{Setup: 0.001, Connect: 0.002, Run: 0.005, Checks: 0.003, Session: 0.004}}
	if c != want {
		t.Errorf("failed case:\ngot  %+v\nwant %+v", c, want)
	}
	if r.Cases[0].Status != report.StatusPass || r.Cases[0].Replay != "" {
		t.Errorf("clean case: got %+v; want a pass with no replay", r.Cases[0])
	}
	for i, v := range r.Violations {
		if v.ID != fmt.Sprintf("V%d", i+1) || v.Source != "matrix" || v.Step != 4 || v.Replay != "go test ./bank -run X" {
			t.Errorf("violation %d: got %+v; want V%d from the matrix at step 4 with its replay", i, v, i+1)
		}
	}
	// the leak leads; the symptom of the same case names it
	if v := r.Violations[0]; v.Invariant != "pool" || v.Kind != report.KindLeak {
		t.Errorf("first violation: got %s (%s); want the pool leak", v.Invariant, v.Kind)
	}
	if v := r.Violations[1]; v.Invariant != "error-surfaced" || v.Kind != report.KindSymptom || strings.Join(v.CausedBy, ",") != "V1" {
		t.Errorf("second violation: got %s (%s) caused by %v; want error-surfaced caused by V1", v.Invariant, v.Kind, v.CausedBy)
	}
}

func TestWritePage(t *testing.T) {
	tests := []struct {
		name    string
		page    report.Page
		want    []string
		wantErr string
	}{
		{"ok", report.Page{Title: "sessionsafe mutate", Meta: []string{"a <b> line"}, Command: "sessionsafe mutate ./store", Verdict: report.VerdictOK,
			Headline: "all killed", Body: "<p id=\"body\">x</p>"},
			[]string{"<title>sessionsafe mutate</title>", `<div class="meta">a &lt;b&gt; line</div>`, "<code>sessionsafe mutate ./store</code>",
				`<div id="verdict" class="banner ok">all killed</div>`, `<p id="body">x</p>`, ".banner.ok{"}, ""},
		{"bad-verdict", report.Page{Verdict: "green"}, nil, `verdict "green"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := report.WritePage(&buf, tt.page)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("WritePage: got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("page lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}
