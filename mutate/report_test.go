package mutate

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// equivalent returns m with an equivalence directive's reason.
func equivalent(m Mutant, reason string) Mutant {
	m.Equivalent = reason
	return m
}

// sampleReport is a fixed report with one mutant of each status.
func sampleReport() Report {
	m := func(op, file string, line int, diff string) Mutant {
		return Mutant{ID: op + "@" + file + ":" + strconv.Itoa(line), Operator: op, Package: "example.com/bank/store", File: file, Line: line, Diff: diff}
	}
	cmd := []string{"go", "test", "./store"}
	r := Report{
		Schema: SchemaV1, Started: time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC), Duration: 95 * time.Second, Parallel: 1,
		Clean: []CleanRun{{Command: cmd, Duration: 7 * time.Second}},
		Results: []Result{
			{Mutant: m("drop-rows-close", "store/store.go", 38, "--- a/store/store.go\n+++ b/store/store.go\n@@ -37,3 +37,3 @@\n \t}\n-\tdefer rows.Close()\n+\t_ = rows\n \tfor rows.Next() {\n"),
				Status: Survived, Command: cmd, Duration: 8 * time.Second},
			{Mutant: m("ignore-commit-error", "store/store.go", 26, "--- a/store/store.go\n+++ b/store/store.go\n@@ -26 +26 @@\n-\tif err := tx.Commit(); err != nil {\n+\t_ = tx.Commit()\n"),
				Status: Killed, KilledBy: "TestTransferCommitFails", Failure: "store_test.go:40: Transfer: got nil error; want the commit's", Command: cmd, Duration: 9 * time.Second},
			{Mutant: m("drop-deferred-rollback", "store/store.go", 19, "--- a/store/store.go\n+++ b/store/store.go\n@@ -19 +19 @@\n-\tdefer tx.Rollback()\n+\t_ = tx\n"),
				Status: TimedOut, Reason: "no result within the per-mutant timeout", Command: cmd, Duration: 31 * time.Second},
			{Mutant: m("tx-call-on-pool", "store/other.go", 12, "--- a/store/other.go\n+++ b/store/other.go\n"),
				Status: NotCovered, Reason: "no test in module bank reaches package example.com/bank/store"},
			{Mutant: equivalent(m("drop-rows-close", "store/store.go", 61, "--- a/store/store.go\n+++ b/store/store.go\n@@ -61 +61 @@\n-\tdefer rows.Close()\n+\t_ = rows\n"),
				"database/sql closes the rows when the transaction ends"),
				Status: Equivalent, Command: cmd, Duration: 8 * time.Second},
		},
	}
	r.summarize()
	return r
}

func TestJUnitGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "junit.golden.xml")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file: %v (run go test ./mutate -run TestJUnitGolden -update to create it)", err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("junit report mismatch (-want +got):\n-%s\n+%s\nrun go test ./mutate -run TestJUnitGolden -update if the change is intended", want, got)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("junit report does not parse: %v", err)
	}
	if doc.Tests != 5 || doc.Failures != 1 || doc.Errors != 1 || doc.Skipped != 2 {
		t.Errorf("junit totals: tests=%d failures=%d errors=%d skipped=%d; want 5, 1, 1, 2", doc.Tests, doc.Failures, doc.Errors, doc.Skipped)
	}
}

// htmlPage is what TestHTML reads back from the page: the text under each id, and the
// page's resources.
type htmlPage struct {
	ids       map[string]string // element id -> its text
	banner    string            // the verdict banner's classes
	resources []string          // script, link or src= found
}

// parseHTML reads the page with encoding/xml in its HTML mode (void elements, entities), so
// a page that does not nest is an error.
func parseHTML(t *testing.T, page []byte) htmlPage {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict, d.AutoClose, d.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	p := htmlPage{ids: map[string]string{}}
	var open []string // ids of the open elements ("" for none)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("html report does not parse: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			id := ""
			for _, a := range tok.Attr {
				switch {
				case a.Name.Local == "id":
					id = a.Value
					p.ids[id] = ""
				case a.Name.Local == "src", a.Name.Local == "href" && !strings.HasPrefix(a.Value, "#"):
					p.resources = append(p.resources, a.Name.Local+"="+a.Value)
				}
				if id == "verdict" && a.Name.Local == "class" {
					p.banner = a.Value
				}
			}
			if tok.Name.Local == "script" || tok.Name.Local == "link" {
				p.resources = append(p.resources, tok.Name.Local)
			}
			open = append(open, id)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			for _, id := range open {
				if id != "" {
					p.ids[id] += string(tok)
				}
			}
		}
	}
	return p
}

func TestHTML(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Report)
		banner string
		want   map[string][]string // id -> texts it holds
		absent []string            // ids that must not be there
	}{
		{"survivor", func(*Report) {}, "banner bad", map[string][]string{
			"verdict":                             {"5 mutants: 1 killed, 1 survived, 1 equivalent, 1 timed out, 1 not covered"},
			"equivalent":                          {"drop-rows-close@store/store.go:61", "database/sql closes the rows when the transaction ends"},
			"kill-table":                          {"drop-rows-close", "ignore-commit-error", "total"},
			"m-drop-rows-close@store/store.go:38": {"store/store.go:38 · drop-rows-close", "-\tdefer rows.Close()", "+\t_ = rows", "go test ./store"},
			"m-ignore-commit-error@store/store.go:26":    {"TestTransferCommitFails", "store_test.go:40"},
			"m-drop-deferred-rollback@store/store.go:19": {"timed-out", "per-mutant timeout"},
			"m-tx-call-on-pool@store/other.go:12":        {"not-covered", "no test in module bank"},
		}, []string{"no-survivors"}},
		{"all-killed", func(r *Report) { r.Results = r.Results[1:2]; r.summarize() }, "banner ok", map[string][]string{
			"verdict":      {"the tests caught every planted bug"},
			"no-survivors": {"None"},
		}, []string{"not-judged", "m-drop-rows-close@store/store.go:38"}},
		{"killed-and-equivalent", func(r *Report) { r.Results = []Result{r.Results[1], r.Results[4]}; r.summarize() }, "banner ok", map[string][]string{
			"verdict":    {"2 mutants: 1 killed, 0 survived, 1 equivalent", "every mutant a test can catch"},
			"equivalent": {"database/sql closes the rows"},
		}, []string{"not-judged"}},
		{"unjudged", func(r *Report) { r.Results = r.Results[1:]; r.summarize() }, "banner partial", map[string][]string{
			"verdict":    {"not every mutant was judged"},
			"not-judged": {"timed-out", "not-covered"},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleReport()
			tt.edit(&r)
			var buf bytes.Buffer
			if err := r.WriteHTML(&buf); err != nil {
				t.Fatal(err)
			}
			p := parseHTML(t, buf.Bytes())
			if p.banner != tt.banner {
				t.Errorf("verdict banner: got class %q; want %q", p.banner, tt.banner)
			}
			for id, texts := range tt.want {
				got, ok := p.ids[id]
				if !ok {
					t.Errorf("html report has no element with id %q", id)
					continue
				}
				for _, s := range texts {
					if !strings.Contains(got, s) {
						t.Errorf("element %q lacks %q; it reads:\n%s", id, s, got)
					}
				}
			}
			for _, id := range tt.absent {
				if _, ok := p.ids[id]; ok {
					t.Errorf("html report has an element with id %q; want none", id)
				}
			}
			if len(p.resources) > 0 {
				t.Errorf("html report is not self-contained: %v", p.resources)
			}
			if !strings.Contains(buf.String(), ".banner.bad{") {
				t.Errorf("html report lacks the shared stylesheet (report.HTMLStyle)")
			}
		})
	}
}
