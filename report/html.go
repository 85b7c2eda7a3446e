package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
)

// Grid is the operation × step × fault view of the matrix cases that the HTML report draws.
type Grid struct {
	Operations []GridOperation
}

// GridOperation is one operation's table: a row per step, a column per fault.
type GridOperation struct {
	Name   string
	Faults []string
	Rows   []GridRow
}

// GridRow is one step of an operation.
type GridRow struct {
	Step     int
	StepKind string
	Cells    []GridCell
}

// GridCell is the outcome of one step × fault, over every backend that ran it.
type GridCell struct {
	Status string // pass, fail, skip or "" (not applicable)
	Title  string // per-backend detail shown on hover
	Anchor string // the first violation's anchor, when failed
}

// BuildGrid groups the matrix cases of r by operation, step and fault.
func BuildGrid(r *Report) Grid {
	type rowKey struct {
		step int
		kind string
	}
	type opData struct {
		faults map[string]bool
		rows   map[rowKey]map[string][]Case
	}
	ops := map[string]*opData{}
	for _, c := range r.Cases {
		o := ops[c.Operation]
		if o == nil {
			o = &opData{faults: map[string]bool{}, rows: map[rowKey]map[string][]Case{}}
			ops[c.Operation] = o
		}
		o.faults[c.Fault] = true
		k := rowKey{c.Step, c.StepKind}
		if o.rows[k] == nil {
			o.rows[k] = map[string][]Case{}
		}
		o.rows[k][c.Fault] = append(o.rows[k][c.Fault], c)
	}
	anchors := map[string]string{}
	for _, v := range r.Violations {
		key := v.Backend + "|" + v.Operation + "|" + fmt.Sprint(v.Step) + "|" + v.Fault
		if _, ok := anchors[key]; !ok {
			anchors[key] = "v-" + v.ID
		}
	}
	var g Grid
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := ops[n]
		gop := GridOperation{Name: n}
		for f := range o.faults {
			gop.Faults = append(gop.Faults, f)
		}
		sort.Strings(gop.Faults)
		keys := make([]rowKey, 0, len(o.rows))
		for k := range o.rows {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].step != keys[j].step {
				return keys[i].step < keys[j].step
			}
			return keys[i].kind < keys[j].kind
		})
		for _, k := range keys {
			row := GridRow{Step: k.step, StepKind: k.kind}
			for _, f := range gop.Faults {
				cases := o.rows[k][f]
				cell := GridCell{}
				var titles []string
				for _, c := range cases {
					titles = append(titles, c.Backend+": "+c.Status+suffix(c.Invariant))
					switch {
					case c.Status == StatusFail:
						cell.Status = StatusFail
						if cell.Anchor == "" {
							cell.Anchor = anchors[c.Backend+"|"+c.Operation+"|"+fmt.Sprint(c.Step)+"|"+c.Fault]
						}
					case c.Status == StatusPass && cell.Status != StatusFail:
						cell.Status = StatusPass
					case cell.Status == "":
						cell.Status = StatusSkip
					}
				}
				cell.Title = strings.Join(titles, "; ")
				row.Cells = append(row.Cells, cell)
			}
			gop.Rows = append(gop.Rows, row)
		}
		g.Operations = append(g.Operations, gop)
	}
	return g
}

func suffix(inv string) string {
	if inv == "" {
		return ""
	}
	return " (" + inv + ")"
}

// HTMLStyle is the stylesheet of every sessionsafe HTML page, the matrix report's and the
// mutation report's alike: the verdict banner (classes banner ok, bad, partial), tables,
// status cells (td.pass, td.fail, td.skip, td.none), finding boxes (div.violation or
// div.finding; div.violation.leak with span.kind for a root cause, div.caused-by for its
// link), pre blocks, diffs (pre.diff with span.add and span.del lines) and replay
// commands (code.replay). WritePage includes it.
const HTMLStyle template.CSS = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#5a6270;font-size:13px}
.banner{padding:12px 16px;border-radius:6px;font-weight:600;margin:16px 0;color:#fff}
.banner.ok{background:#1f8a4c}.banner.bad{background:#c62828}.banner.partial{background:#b26a00}
table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:left}
th{background:#eef1f5;font-weight:600}
table.grid td.cell{width:34px;text-align:center;font-weight:700}
table.grid th.fault{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;font-weight:500}
td.pass{background:#c8ecd4;color:#17663a}td.fail{background:#f4b4b4;color:#8e1111}
td.skip{background:#e3e5e8;color:#6b7280}td.none{background:#fff}
td.fail a{color:#8e1111;text-decoration:none}
.violation,.finding{border:1px solid #e2a3a3;border-left:6px solid #c62828;background:#fff;border-radius:4px;padding:10px 14px;margin:12px 0}
.violation.leak{border-left-color:#6a1b9a}.violation .kind{background:#6a1b9a;color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}
.caused-by{font-size:13px;margin:4px 0}
pre{background:#f2f4f7;padding:8px;border-radius:4px;overflow-x:auto;font-size:12px;white-space:pre-wrap}
code.replay{display:block;background:#1d2330;color:#e6edf3;padding:8px;border-radius:4px;font-size:12px;white-space:pre-wrap}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:3px;font-size:12px}
pre.diff .add{color:#17663a}pre.diff .del{color:#8e1111}
td.num{text-align:right}
`

// Verdicts: the colour of a page's banner.
const (
	VerdictOK      = "ok"      // green: nothing broke
	VerdictBad     = "bad"     // red: something broke
	VerdictPartial = "partial" // amber: nothing broke so far, but the run did not complete
)

// Page is one self-contained HTML page in the look of the sessionsafe reports: a heading,
// lines of context, a coloured verdict banner, then a body of the caller's own.
type Page struct {
	// Title is the heading and the window's title, e.g. "sessionsafe matrix".
	Title string
	// Meta is lines of context under the heading, as plain text.
	Meta []string
	// Command, if set, is the command line shown under Meta.
	Command string
	// Verdict is the banner's colour: VerdictOK, VerdictBad or VerdictPartial.
	Verdict string
	// Headline is the banner's text.
	Headline string
	// Body is the rest of the page, escaped by the caller's own html/template; it may use
	// the classes HTMLStyle defines.
	Body template.HTML
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
{{.Style}}</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Meta}}<div class="meta">{{.}}</div>
{{end}}{{if .Command}}<div class="meta">command line: <code>{{.Command}}</code></div>
{{end}}<div id="verdict" class="banner {{.Verdict}}">{{.Headline}}</div>
{{.Body}}</body>
</html>
`))

// WritePage writes p as one HTML page with HTMLStyle inline: no script, no external resource.
func WritePage(w io.Writer, p Page) error {
	switch p.Verdict {
	case VerdictOK, VerdictBad, VerdictPartial:
	default:
		return fmt.Errorf("write html page: verdict %q; want %q, %q or %q", p.Verdict, VerdictOK, VerdictBad, VerdictPartial)
	}
	data := struct {
		Page
		Style template.CSS
	}{p, HTMLStyle}
	if err := pageTemplate.Execute(w, data); err != nil {
		return fmt.Errorf("write html page: %w", err)
	}
	return nil
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"statusText": func(s string) string {
		switch s {
		case StatusPass:
			return "✓"
		case StatusFail:
			return "✗"
		case StatusSkip:
			return "–"
		}
		return ""
	},
	"f1": func(f float64) string { return fmt.Sprintf("%.1f", f) },
}).Parse(`<table id="summary">
<tr><th>matrix cases</th><th>passed</th><th>failed</th><th>skipped</th><th>chaos operations</th><th>faults injected</th><th>violations</th></tr>
<tr><td>{{.R.Summary.Cases}}</td><td>{{.R.Summary.Passed}}</td><td>{{.R.Summary.Failed}}</td><td>{{.R.Summary.Skipped}}</td><td>{{.R.Summary.Operations}}</td><td>{{.R.Summary.Faults}}</td><td>{{.R.Summary.Violations}}</td></tr>
</table>
{{if .R.Errors}}<h2>Errors</h2>{{range .R.Errors}}<pre class="error">{{.}}</pre>{{end}}{{end}}
{{if .Grid.Operations}}
<h2>Matrix: operation × step × fault</h2>
<div class="legend"><span style="background:#c8ecd4">✓ every backend held</span><span style="background:#f4b4b4">✗ an invariant broke</span><span style="background:#e3e5e8">– skipped</span><span style="background:#fff;border:1px solid #d5d9e0">not applicable</span></div>
{{range .Grid.Operations}}
<h3>{{.Name}}</h3>
<table class="grid" data-operation="{{.Name}}">
<tr><th>step</th>{{range .Faults}}<th class="fault">{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><th>{{.Step}} {{.StepKind}}</th>{{range .Cells}}{{if .Status}}<td class="cell {{.Status}}" title="{{.Title}}">{{if .Anchor}}<a href="#{{.Anchor}}">{{statusText .Status}}</a>{{else}}{{statusText .Status}}{{end}}</td>{{else}}<td class="cell none"></td>{{end}}{{end}}</tr>
{{end}}</table>
{{end}}{{end}}
{{if .R.Chaos}}
<h2>Chaos</h2>
<table id="chaos">
<tr><th>backend</th><th>provider</th><th>seed</th><th>workers</th><th>operations</th><th>ops/s</th><th>errors seen</th><th>faults</th><th>backends killed</th><th>restarts</th><th>pauses</th><th>acked writes</th><th>ambiguous</th><th>violations</th></tr>
{{range .R.Chaos}}<tr><td>{{.Backend}}</td><td>{{.Provider}}</td><td>{{.Seed}}</td><td>{{.Workers}}</td><td>{{.Operations}}</td><td>{{f1 .OpsPerSec}}</td><td>{{.Errors}}</td><td>{{.Faults}}</td><td>{{.Terminated}}</td><td>{{.Restarts}}</td><td>{{.Pauses}}</td><td>{{.Acked}}</td><td>{{.Ambiguous}}</td><td>{{.Violations}}</td></tr>
{{end}}</table>
{{end}}
<h2>Violations ({{len .R.Violations}}){{with .R.RootCauses}}: {{len .}} root cause(s) first{{end}}</h2>
{{if not .R.Violations}}<p id="no-violations">None: every session ended, every connection came back.</p>{{end}}
{{range .R.Violations}}
<div class="violation {{.Kind}}" id="v-{{.ID}}">
<h3>{{if eq .Kind "leak"}}<span class="kind">root cause</span> {{end}}{{.ID}} · {{.Invariant}} · {{.Operation}}{{if .StepKind}} at step {{.Step}} ({{.StepKind}}){{end}}{{if .Fault}} under {{.Fault}}{{end}} · {{.Backend}} · {{.Source}}</h3>
{{if .CausedBy}}<div class="caused-by">may follow from the earlier leak {{range $i, $c := .CausedBy}}{{if $i}}, {{end}}<a href="#v-{{$c}}">{{$c}}</a>{{end}}</div>{{end}}
<pre>{{.Message}}</pre>
{{if .Attribution}}<div>where it was acquired:</div><pre>{{.Attribution}}</pre>{{end}}
{{if .Trace}}<details><summary>trace</summary><pre>{{.Trace}}</pre></details>{{end}}
<div>replay:</div><code class="replay">{{.Replay}}</code>
{{if .Shrunk}}<div>shrunk replay (smallest still failing):</div><code class="replay shrunk">{{.Shrunk}}</code>{{end}}
</div>
{{end}}
`))

// WriteHTML writes r as one self-contained HTML page (no script, no external resource):
// the summary, the coloured operation × step × fault grid, the chaos runs and every
// violation with its details and replay command.
func WriteHTML(w io.Writer, r *Report) error {
	data := struct {
		R        *Report
		Grid     Grid
		Args     string
		Verdict  string
		Headline string
	}{R: r, Grid: BuildGrid(r), Args: strings.Join(r.Args, " ")}
	switch {
	case r.Failed():
		data.Verdict = VerdictBad
		data.Headline = fmt.Sprintf("%d violation(s), %d failed case(s)", len(r.Violations), r.Summary.Failed)
	case r.Interrupted || len(r.Errors) > 0:
		data.Verdict = VerdictPartial
		data.Headline = "no violation so far, but the run did not complete"
	default:
		data.Verdict = VerdictOK
		data.Headline = "no violation: every session ended, every connection came back"
	}
	if r.Interrupted {
		data.Headline += " (interrupted: partial report)"
	}
	var body bytes.Buffer
	if err := htmlTemplate.Execute(&body, data); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	var meta string
	if r.Seed != 0 {
		meta = fmt.Sprintf("seed %d · ", r.Seed)
	}
	meta += fmt.Sprintf("backends %s · started %s · %.1f s", strings.Join(r.Backends, ", "), r.Started.Format("2006-01-02 15:04:05 UTC"), r.Summary.Seconds)
	page := Page{Title: "sessionsafe " + r.Command, Meta: []string{meta}, Command: data.Args,
		Verdict: data.Verdict, Headline: data.Headline, Body: template.HTML(body.String())}
	if err := WritePage(w, page); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}
