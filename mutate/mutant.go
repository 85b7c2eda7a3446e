package mutate

import (
	"bytes"
	"fmt"
	"sort"
)

// Mutant is one planted session bug: one operator applied at one site. Mutants come from
// Find; Run applies them.
type Mutant struct {
	// ID names the mutant stably: operator@file:line, with a #n suffix when one operator
	// finds several sites on one line.
	ID string `json:"id"`
	// Operator is the id of the operator that made it, e.g. "drop-deferred-rollback".
	Operator string `json:"operator"`
	// Package is the import path of the mutated package.
	Package string `json:"package"`
	// File is the mutated file, relative to its module's root (slash-separated).
	File string `json:"file"`
	// Line is the 1-based line of the site in File.
	Line int `json:"line"`
	// Diff is the change as a unified diff of File.
	Diff string `json:"diff"`
	// Equivalent is the reason an EquivalentDirective at the site gives why no test can
	// catch the mutant; empty when there is none.
	Equivalent string `json:"equivalent,omitempty"`

	path   string // absolute path of the original file
	modDir string // root of the module holding it
	edits  []edit
}

// Pos returns the site as file:line.
func (m Mutant) Pos() string { return fmt.Sprintf("%s:%d", m.File, m.Line) }

// edit replaces src[start:end] with text.
type edit struct {
	start, end int
	text       string
}

// apply returns src with the edits made; the edits must not overlap.
func apply(src []byte, edits []edit) []byte {
	es := append([]edit(nil), edits...)
	sort.Slice(es, func(i, j int) bool { return es[i].start > es[j].start })
	out := append([]byte(nil), src...)
	for _, e := range es {
		out = append(out[:e.start:e.start], append([]byte(e.text), out[e.end:]...)...)
	}
	return out
}

// unifiedDiff is a one-hunk unified diff of a and b with up to context unchanged lines
// around the change: mutants change one region, so one hunk is enough.
func unifiedDiff(name string, a, b []byte, context int) string {
	al, bl := splitLines(a), splitLines(b)
	pre := 0
	for pre < len(al) && pre < len(bl) && al[pre] == bl[pre] {
		pre++
	}
	suf := 0
	for suf < len(al)-pre && suf < len(bl)-pre && al[len(al)-1-suf] == bl[len(bl)-1-suf] {
		suf++
	}
	if pre == len(al) && pre == len(bl) {
		return ""
	}
	start := max(pre-context, 0)
	aEnd := min(len(al)-suf+context, len(al))
	bEnd := min(len(bl)-suf+context, len(bl))
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "--- a/%s\n+++ b/%s\n", name, name)
	fmt.Fprintf(&buf, "@@ -%s +%s @@\n", hunkRange(start, aEnd-start), hunkRange(start, bEnd-start))
	for i := start; i < pre; i++ {
		buf.WriteString(" " + al[i] + "\n")
	}
	for _, l := range middle(al[pre:len(al)-suf], bl[pre:len(bl)-suf]) {
		buf.WriteString(l + "\n")
	}
	for i := len(al) - suf; i < aEnd; i++ {
		buf.WriteString(" " + al[i] + "\n")
	}
	return buf.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	s := string(bytes.TrimSuffix(b, []byte("\n")))
	var out []string
	for _, l := range bytes.Split([]byte(s), []byte("\n")) {
		out = append(out, string(l))
	}
	return out
}

// middle diffs the changed region line by line (a longest common subsequence: the region
// of a mutant is a few lines), so a moved line shows as one line out and one line in.
func middle(a, b []string) []string {
	if len(a)*len(b) > 1<<16 {
		var out []string
		for _, l := range a {
			out = append(out, "-"+l)
		}
		for _, l := range b {
			out = append(out, "+"+l)
		}
		return out
	}
	// lcs[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, " "+a[i])
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "-"+a[i])
			i++
		default:
			out = append(out, "+"+b[j])
			j++
		}
	}
	return out
}
