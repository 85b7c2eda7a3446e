package mutate

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/token"
	"slices"
	"strings"
)

// EquivalentDirective marks a site whose mutant no test can catch, with the reason, in the
// source: a line comment
//
//	//sessionsafe:equivalent OPERATOR REASON
//
// at the end of the mutated line, or on a line of its own right above it. Such a mutant that
// survives is Equivalent — reported with the reason, not as a gap in the tests; one that is
// killed is reported as killed, with the directive named as stale. A directive that names an
// unknown operator, gives no reason, or marks a line where its operator finds no site is an
// error of Find: it cannot drift silently from the code it excuses.
const EquivalentDirective = "//sessionsafe:equivalent"

// equivalence is one directive: the line it excuses, the operator, the reason.
type equivalence struct {
	at       string // file:line of the directive
	line     int    // the line it excuses
	operator string
	reason   string
	used     bool
}

// equivalences reads the directives of f (src is its text, rel its name in the module).
func equivalences(fset *token.FileSet, f *ast.File, src []byte, rel string) ([]*equivalence, error) {
	var out []*equivalence
	for _, g := range f.Comments {
		for _, c := range g.List {
			text, ok := strings.CutPrefix(c.Text, EquivalentDirective)
			if !ok || (text != "" && text[0] != ' ' && text[0] != '\t') {
				continue
			}
			p := fset.Position(c.Slash)
			at := fmt.Sprintf("%s:%d", rel, p.Line)
			op, reason, _ := strings.Cut(strings.TrimSpace(text), " ")
			reason = strings.TrimSpace(reason)
			switch {
			case op == "":
				return nil, fmt.Errorf("mutate: find: %s: %s names no operator; want %s OPERATOR REASON", at, EquivalentDirective, EquivalentDirective)
			case !slices.Contains(operatorIDs(), op):
				return nil, fmt.Errorf("mutate: find: %s: %s names unknown operator %q; want one of %s", at, EquivalentDirective, op, strings.Join(operatorIDs(), ", "))
			case reason == "":
				return nil, fmt.Errorf("mutate: find: %s: %s %s gives no reason: say why no test can catch the mutant", at, EquivalentDirective, op)
			}
			line := p.Line
			if lineStart := bytes.LastIndexByte(src[:p.Offset], '\n') + 1; len(bytes.TrimSpace(src[lineStart:p.Offset])) == 0 {
				line++ // on a line of its own: it excuses the next line
			}
			out = append(out, &equivalence{at: at, line: line, operator: op, reason: reason})
		}
	}
	return out, nil
}

// excuse returns the reason of the directive for a mutant of operator op at line, marking
// the directive used, or "".
func excuse(eqs []*equivalence, op string, line int) string {
	for _, e := range eqs {
		if e.operator == op && e.line == line {
			e.used = true
			return e.reason
		}
	}
	return ""
}

// unusedEquivalence returns an error naming the first directive for one of ops that
// excused no mutant: its line no longer holds such a site (the code moved, or changed).
func unusedEquivalence(eqs []*equivalence, ops []operator) error {
	for _, e := range eqs {
		if e.used || !slices.ContainsFunc(ops, func(o operator) bool { return o.id == e.operator }) {
			continue
		}
		return fmt.Errorf("mutate: find: %s: %s %s: operator %s finds no site on line %d (did the code move?)",
			e.at, EquivalentDirective, e.operator, e.operator, e.line)
	}
	return nil
}
