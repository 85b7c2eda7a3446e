package mutate

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/report"
)

// diffLine is one line of a diff as the page colours it.
type diffLine struct {
	Class string // "add", "del" or ""
	Text  string
}

func diffLines(diff string) []diffLine {
	var out []diffLine
	for _, l := range strings.Split(strings.TrimRight(diff, "\n"), "\n") {
		d := diffLine{Text: l}
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
		case strings.HasPrefix(l, "+"):
			d.Class = "add"
		case strings.HasPrefix(l, "-"):
			d.Class = "del"
		}
		out = append(out, d)
	}
	return out
}

// htmlCell is one count of the operator × status table; Class colours it when not zero.
type htmlCell struct {
	N     int
	Class string
}

type htmlRow struct {
	Operator string
	Total    int
	Cells    []htmlCell // killed, survived, equivalent, timed out, not covered
}

func rowOf(name string, s Summary) htmlRow {
	cell := func(n int, class string) htmlCell {
		if n == 0 {
			class = "none"
		}
		return htmlCell{n, class}
	}
	return htmlRow{Operator: name, Total: s.Total, Cells: []htmlCell{
		cell(s.Killed, "pass"), cell(s.Survived, "fail"), cell(s.Equivalent, "skip"), cell(s.TimedOut, "skip"), cell(s.NotCovered, "skip"),
	}}
}

var htmlBody = template.Must(template.New("mutate").Funcs(template.FuncMap{
	"diff":  diffLines,
	"round": func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) },
	"join":  func(s []string) string { return strings.Join(s, " ") },
}).Parse(`<table id="kill-table">
<tr><th>operator</th><th>mutants</th><th>killed</th><th>survived</th><th>equivalent</th><th>timed out</th><th>not covered</th></tr>
{{range .Rows}}<tr{{if eq .Operator "total"}} class="total"{{end}}><th>{{.Operator}}</th><td class="num">{{.Total}}</td>{{range .Cells}}<td class="num {{.Class}}">{{.N}}</td>{{end}}</tr>
{{end}}</table>
<h2>Survivors ({{len .Survivors}})</h2>
{{if not .Survivors}}<p id="no-survivors">None: a test failed for every mutant that ran to the end.</p>
{{else}}<p>No test failed with these bugs planted: each is a gap in the tests, or a change that cannot matter (say why, and keep it in mind).</p>
{{end}}{{range .Survivors}}<div class="finding survivor" id="m-{{.ID}}">
<h3>{{.Pos}} · {{.Operator}}</h3>
<pre class="diff">{{range diff .Diff}}{{if .Class}}<span class="{{.Class}}">{{.Text}}</span>{{else}}{{.Text}}{{end}}
{{end}}</pre>
{{if .Command}}<div>tests run: <code>{{join .Command}}</code> ({{round .Duration}})</div>{{end}}
</div>
{{end}}{{if .Equivalent}}<h2>Equivalent ({{len .Equivalent}})</h2>
<p>Survived, and the source says why no test can catch them.</p>
<table id="equivalent">
<tr><th>mutant</th><th>why no test can catch it</th></tr>
{{range .Equivalent}}<tr id="m-{{.ID}}"><td>{{.ID}}</td><td>{{.Equivalent}}</td></tr>
{{end}}</table>
{{end}}{{if .Unjudged}}<h2>Not judged ({{len .Unjudged}})</h2>
<table id="not-judged">
<tr><th>mutant</th><th>status</th><th>reason</th></tr>
{{range .Unjudged}}<tr id="m-{{.ID}}"><td>{{.ID}}</td><td class="skip">{{.Status}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>
{{end}}<h2>Killed ({{len .Killed}})</h2>
{{if .Killed}}<table id="killed">
<tr><th>mutant</th><th>killed by</th><th>its failure</th><th>time</th></tr>
{{range .Killed}}<tr id="m-{{.ID}}"><td>{{.ID}}{{if .Equivalent}} <span class="fail">(marked equivalent: remove the directive)</span>{{end}}</td><td class="pass">{{.KilledBy}}</td><td><code>{{.Failure}}</code></td><td class="num">{{round .Duration}}</td></tr>
{{end}}</table>
{{end}}`))

// WriteHTML writes the report as one self-contained HTML page in the look of the matrix
// report (report.WritePage): the operator × status table, every survivor with its diff, the
// mutants that were not judged with the reason, and every killed mutant with the test that
// killed it.
func (r Report) WriteHTML(w io.Writer) error {
	data := struct {
		Rows                                    []htmlRow
		Survivors, Equivalent, Unjudged, Killed []Result
	}{}
	for _, o := range r.Operators {
		data.Rows = append(data.Rows, rowOf(o.Operator, o.Summary))
	}
	data.Rows = append(data.Rows, rowOf("total", r.Summary))
	for _, res := range r.Results {
		switch res.Status {
		case Survived:
			data.Survivors = append(data.Survivors, res)
		case Equivalent:
			data.Equivalent = append(data.Equivalent, res)
		case Killed:
			data.Killed = append(data.Killed, res)
		default:
			data.Unjudged = append(data.Unjudged, res)
		}
	}
	var body bytes.Buffer
	if err := htmlBody.Execute(&body, data); err != nil {
		return fmt.Errorf("mutate: write html report: %w", err)
	}
	s := r.Summary
	p := report.Page{
		Title: "sessionsafe mutate",
		Meta: []string{fmt.Sprintf("started %s · %s · %d at a time",
			r.Started.UTC().Format("2006-01-02 15:04:05 UTC"), r.Duration.Round(time.Second), r.Parallel)},
		Body: template.HTML(body.String()),
	}
	if r.Shard != "" {
		p.Meta[0] += " · shard " + r.Shard
	}
	for _, c := range r.Clean {
		p.Meta = append(p.Meta, fmt.Sprintf("clean run: %s (%s)", strings.Join(c.Command, " "), c.Duration.Round(100*time.Millisecond)))
	}
	counts := s.counts()
	switch {
	case s.Survived > 0:
		p.Verdict, p.Headline = report.VerdictBad, counts
	case s.TimedOut+s.NotCovered > 0 || s.Total == 0:
		p.Verdict, p.Headline = report.VerdictPartial, counts+": no survivor, but not every mutant was judged"
	case s.Equivalent > 0:
		p.Verdict, p.Headline = report.VerdictOK, counts+": the tests caught every mutant a test can catch"
	default:
		p.Verdict, p.Headline = report.VerdictOK, counts+": the tests caught every planted bug"
	}
	if err := report.WritePage(w, p); err != nil {
		return fmt.Errorf("mutate: write html report: %w", err)
	}
	return nil
}
