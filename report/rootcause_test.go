package report_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/report"
)

// rowsLeftOpen is what a chaos run on code that leaves its rows open reports, in the order
// it saw it: a worker's operations fail with "driver: bad connection" after the worker's
// pool check found the rows it left open; another worker fails for a reason of its own.
func rowsLeftOpen() []report.Violation {
	return []report.Violation{
		{ID: "V1", Source: "chaos", Backend: "postgres", Invariant: "unexpected-error", Message: "driver: bad connection", Scope: "worker 0", Seq: 20},
		{ID: "V2", Source: "chaos", Backend: "postgres", Invariant: "unexpected-error", Message: "driver: bad connection", Scope: "worker 0", Seq: 30},
		{ID: "V3", Source: "chaos", Backend: "postgres", Invariant: "pool", Message: "1 connection still in use", Scope: "worker 0", Seq: 10,
			Attribution: "bank.rowsLeftOpen.ListAccounts\n\tbank/planted_test.go:118"},
		{ID: "V4", Source: "chaos", Backend: "postgres", Invariant: "ledger", Message: "acknowledged write lost", Scope: "worker 1", Seq: 15},
		{ID: "V5", Source: "chaos", Backend: "postgres", Invariant: "unexpected-error", Message: "timeout", Scope: "worker 1", Seq: 5},
		{ID: "V6", Source: "chaos", Backend: "postgres", Invariant: "server", Message: "backend 42 holds a lock", Seq: 12}, // no scope: every session meets a lock
	}
}

func TestRootCausesFirst(t *testing.T) {
	type want struct {
		id, inv, kind string
		causedBy      []string
	}
	tests := []struct {
		name string
		in   []report.Violation
		want []want
	}{
		{"rows left open, then bad connections", rowsLeftOpen(), []want{
			{"V1", "pool", report.KindLeak, nil},                                 // was V3
			{"V2", "server", report.KindLeak, nil},                               // was V6
			{"V3", "unexpected-error", report.KindSymptom, nil},                  // worker 1 at 5: before every leak
			{"V4", "ledger", report.KindSymptom, []string{"V2"}},                 // worker 1 at 15: the lock leak (no scope) was there
			{"V5", "unexpected-error", report.KindSymptom, []string{"V1", "V2"}}, // worker 0 at 20
			{"V6", "unexpected-error", report.KindSymptom, []string{"V1", "V2"}}, // worker 0 at 30
		}},
		{"no seq: the order given", []report.Violation{
			{ID: "V1", Invariant: "error-surfaced"},
			{ID: "V2", Invariant: "pool"},
			{ID: "V3", Invariant: "all-or-nothing"},
		}, []want{
			{"V1", "pool", report.KindLeak, nil},
			{"V2", "error-surfaced", report.KindSymptom, nil},
			{"V3", "all-or-nothing", report.KindSymptom, []string{"V1"}},
		}},
		{"a cause the producer named is kept and renumbered", []report.Violation{
			{ID: "V1", Invariant: "collateral", Seq: 1, CausedBy: []string{"V3"}},
			{ID: "V2", Invariant: "goroutines", Seq: 2},
			{ID: "V3", Invariant: "server", Seq: 3},
		}, []want{
			{"V1", "goroutines", report.KindLeak, nil},
			{"V2", "server", report.KindLeak, nil},
			{"V3", "collateral", report.KindSymptom, []string{"V2"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := slices.Clone(tt.in)
			report.RootCausesFirst(vs)
			check := func(vs []report.Violation) {
				t.Helper()
				if len(vs) != len(tt.want) {
					t.Fatalf("got %d violations; want %d", len(vs), len(tt.want))
				}
				for i, w := range tt.want {
					v := vs[i]
					if v.ID != w.id || v.Invariant != w.inv || v.Kind != w.kind || !slices.Equal(v.CausedBy, w.causedBy) {
						t.Errorf("violation %d: got %s %s %s caused by %v; want %s %s %s caused by %v",
							i, v.ID, v.Invariant, v.Kind, v.CausedBy, w.id, w.inv, w.kind, w.causedBy)
					}
				}
			}
			check(vs)
			report.RootCausesFirst(vs) // idempotent
			check(vs)
		})
	}
}

// TestRootCauseLeadsEveryFormat: in JSON, JUnit and HTML the leak comes first with its
// stack, and the symptom after it names it.
func TestRootCauseLeadsEveryFormat(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := report.New("chaos", nil, 7, start)
	r.Chaos = []report.ChaosRun{{Backend: "postgres", Seed: 7, Workers: 2}}
	r.Violations = rowsLeftOpen()
	r.Finish(start.Add(time.Second))

	var js bytes.Buffer
	if err := report.WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var back report.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if v := back.Violations[0]; v.Kind != report.KindLeak || v.Invariant != "pool" || !strings.Contains(v.Attribution, "planted_test.go:118") {
		t.Errorf("JSON: the first violation is %+v; want the pool leak with its stack", v)
	}
	if v := back.Violations[4]; v.Kind != report.KindSymptom || !slices.Equal(v.CausedBy, []string{"V1", "V2"}) {
		t.Errorf("JSON: violation 5 is %+v; want a symptom caused by V1 and V2", v)
	}

	var ju bytes.Buffer
	if err := report.WriteJUnit(&ju, r); err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure struct {
					Body string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(ju.Bytes(), &suites); err != nil {
		t.Fatal(err)
	}
	cases := suites.Suites[0].Cases
	if !strings.HasPrefix(cases[0].Name, "V1 ") || !strings.HasPrefix(cases[0].Failure.Body, "root cause (leak)") ||
		!strings.Contains(cases[0].Failure.Body, "planted_test.go:118") {
		t.Errorf("JUnit: the first case is %q: %q; want V1, the root cause with its stack", cases[0].Name, cases[0].Failure.Body)
	}
	if body := cases[4].Failure.Body; !strings.HasPrefix(body, "may follow from the earlier leak V1 (pool), V2 (server)") {
		t.Errorf("JUnit: the fifth case's body is %q; want it led by its causes", body)
	}

	var page bytes.Buffer
	if err := report.WriteHTML(&page, r); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	leak, symptom := strings.Index(h, `id="v-V1"`), strings.Index(h, `id="v-V5"`)
	if leak < 0 || symptom < 0 || leak > symptom {
		t.Fatalf("HTML: the leak (at %d) must come before the symptom (at %d)", leak, symptom)
	}
	for _, want := range []string{`<div class="violation leak" id="v-V1">`, `<span class="kind">root cause</span> V1`,
		`may follow from the earlier leak <a href="#v-V1">V1</a>, <a href="#v-V2">V2</a>`, "2 root cause(s) first"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}
