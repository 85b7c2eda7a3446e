package faults

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rule says where one fault fires: at step Step, or (Step 0) at the Nth step
// of kind Match whose SQL contains Pattern.
type Rule struct {
	Step    int      // 1-based step index; 0 when the rule matches
	Match   StepKind // with Step 0: the kind of step to match
	Pattern string   // with Match: a case-insensitive substring of the step's SQL or fingerprint; empty matches all
	Nth     int      // with Match: fire at the Nth matching step (1-based)
	Fault   Fault
}

// String returns the rule as plans write it: "step=7:pgerr=40001" or
// "match=exec~UPDATE t#2:badconn".
func (r Rule) String() string {
	var b strings.Builder
	if r.Step > 0 {
		b.WriteString("step=")
		b.WriteString(strconv.Itoa(r.Step))
	} else {
		b.WriteString("match=")
		b.WriteString(r.Match.String())
		if r.Pattern != "" {
			b.WriteByte('~')
			b.WriteString(r.Pattern)
		}
		b.WriteByte('#')
		b.WriteString(strconv.Itoa(r.Nth))
	}
	b.WriteByte(':')
	b.WriteString(r.Fault.String())
	return b.String()
}

// Validate reports whether the rule is well formed.
func (r Rule) Validate() error {
	if r.Step < 0 {
		return fmt.Errorf("validate rule %s: negative step: %w", r, ErrInvalidFault)
	}
	if r.Step == 0 {
		if r.Match < StepConnect || r.Match > StepClose {
			return fmt.Errorf("validate rule: neither a step nor a step kind to match: %w", ErrInvalidFault)
		}
		if r.Nth < 1 {
			return fmt.Errorf("validate rule %s: nth match must be at least 1: %w", r, ErrInvalidFault)
		}
		if strings.ContainsAny(r.Pattern, patternStops) {
			return fmt.Errorf("validate rule: pattern %q may not contain any of %q: %w", r.Pattern, patternStops, ErrInvalidFault)
		}
	} else if r.Match != 0 || r.Pattern != "" || r.Nth != 0 {
		return fmt.Errorf("validate rule %s: a step rule has no match, pattern or nth: %w", r, ErrInvalidFault)
	}
	if r.Fault.Kind == KindAmbiguous && r.Step == 0 && r.Match != StepCommit {
		return fmt.Errorf("validate rule %s: ambiguous applies to commit steps only: %w", r, ErrInvalidFault)
	}
	return r.Fault.Validate()
}

// patternStops are the bytes a pattern cannot hold: they end it in the text form.
const patternStops = ",:#"

// Plan is a set of rules; each fires at most once. When two rules target
// the same step, the first one fires.
type Plan struct {
	Rules []Rule
}

// String returns the plan's text form, the rules joined by commas; ParsePlan
// reads it back to an equal Plan. The empty plan prints as "".
func (p Plan) String() string {
	parts := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Validate reports whether every rule is well formed.
func (p Plan) Validate() error {
	for i, r := range p.Rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("validate plan rule %d: %w", i+1, err)
		}
	}
	return nil
}

// ParsePlan parses a plan's text form:
//
//	plan   = "" | rule { "," rule }
//	rule   = target ":" fault
//	target = "step=" N | "match=" stepkind [ "~" pattern ] [ "#" N ]
//	fault  = "error" | "pgerr=" SQLSTATE | "badconn" | "cancel" | "latency=" duration
//	       | "panic" | "cut" | "cut-after" | "ambiguous" | "terminate" | "lock" | "stmt-timeout"
//
// for example "step=7:pgerr=40001" or "match=commit#1:ambiguous,match=exec~UPDATE#2:badconn".
// Spaces after a comma and around the whole text are allowed; a pattern is
// any text without ',', ':' or '#'; #N defaults to #1. An error names the
// byte offset and what was expected there, and wraps ErrPlanSyntax.
func ParsePlan(s string) (Plan, error) {
	ps := planParser{src: s}
	ps.skipSpace()
	var p Plan
	if ps.eof() {
		return p, nil
	}
	for {
		r, err := ps.rule()
		if err != nil {
			return Plan{}, err
		}
		p.Rules = append(p.Rules, r)
		ps.skipSpace()
		if ps.eof() {
			return p, nil
		}
		if !ps.consume(",") {
			return Plan{}, ps.fail("',' between rules or the end of the plan")
		}
		ps.skipSpace()
	}
}

// MustParsePlan is ParsePlan for plans written in code; it panics on error.
func MustParsePlan(s string) Plan {
	p, err := ParsePlan(s)
	if err != nil {
		panic(err)
	}
	return p
}

type planParser struct {
	src string
	pos int
}

func (ps *planParser) eof() bool { return ps.pos >= len(ps.src) }

func (ps *planParser) skipSpace() {
	for !ps.eof() && (ps.src[ps.pos] == ' ' || ps.src[ps.pos] == '\t' || ps.src[ps.pos] == '\n') {
		ps.pos++
	}
}

func (ps *planParser) consume(tok string) bool {
	if strings.HasPrefix(ps.src[ps.pos:], tok) {
		ps.pos += len(tok)
		return true
	}
	return false
}

func (ps *planParser) fail(expected string) error {
	found := "the end of the plan"
	if !ps.eof() {
		found = strconv.Quote(shorten(ps.src[ps.pos:], 20))
	}
	return fmt.Errorf("parse plan %q: at offset %d: expected %s, found %s: %w", shorten(ps.src, 200), ps.pos, expected, found, ErrPlanSyntax)
}

// word reads [a-z0-9-]*.
func (ps *planParser) word() string {
	start := ps.pos
	for !ps.eof() {
		c := ps.src[ps.pos]
		if (c >= 'a' && c <= 'z') || c == '-' || isDigit(c) {
			ps.pos++
			continue
		}
		break
	}
	return ps.src[start:ps.pos]
}

func (ps *planParser) number(what string) (int, error) {
	start := ps.pos
	for !ps.eof() && isDigit(ps.src[ps.pos]) {
		ps.pos++
	}
	if ps.pos == start {
		return 0, ps.fail(what)
	}
	n, err := strconv.Atoi(ps.src[start:ps.pos])
	if err != nil || n < 1 || n > 1<<30 {
		ps.pos = start
		return 0, ps.fail(what + " (1 to 1073741824)")
	}
	return n, nil
}

func (ps *planParser) rule() (Rule, error) {
	var r Rule
	switch {
	case ps.consume("step="):
		n, err := ps.number("a step number")
		if err != nil {
			return r, err
		}
		r.Step = n
	case ps.consume("match="):
		start := ps.pos
		k, err := ParseStepKind(ps.word())
		if err != nil {
			ps.pos = start
			return r, ps.fail("a step kind (" + strings.Join(stepKindNames[1:], ", ") + ")")
		}
		r.Match = k
		if ps.consume("~") {
			pstart := ps.pos
			for !ps.eof() && !strings.ContainsRune(patternStops, rune(ps.src[ps.pos])) {
				ps.pos++
			}
			if ps.pos == pstart {
				return r, ps.fail("an SQL pattern after '~'")
			}
			r.Pattern = ps.src[pstart:ps.pos]
		}
		r.Nth = 1
		if ps.consume("#") {
			n, err := ps.number("the number of the match after '#'")
			if err != nil {
				return r, err
			}
			r.Nth = n
		}
	default:
		return r, ps.fail(`"step=" or "match="`)
	}
	if !ps.consume(":") {
		if r.Step > 0 {
			return r, ps.fail("':' and a fault")
		}
		return r, ps.fail("'~' and a pattern, '#' and a number, or ':' and a fault")
	}
	f, err := ps.fault()
	if err != nil {
		return r, err
	}
	r.Fault = f
	if r.Fault.Kind == KindAmbiguous && r.Step == 0 && r.Match != StepCommit {
		return r, fmt.Errorf("parse plan %q: rule %s: ambiguous applies to commit steps only: %w", shorten(ps.src, 200), r, ErrPlanSyntax)
	}
	return r, nil
}

func (ps *planParser) fault() (Fault, error) {
	var f Fault
	start := ps.pos
	k, err := ParseKind(ps.word())
	if err != nil {
		ps.pos = start
		return f, ps.fail("a fault (" + strings.Join(kindNames[1:], ", ") + ")")
	}
	f.Kind = k
	switch k {
	case KindPgErr:
		if !ps.consume("=") {
			return f, ps.fail("'=' and an SQLSTATE after pgerr")
		}
		cstart := ps.pos
		for !ps.eof() && ps.pos-cstart < 5 && (isDigit(ps.src[ps.pos]) || isLetter(ps.src[ps.pos])) {
			ps.pos++
		}
		code := strings.ToUpper(ps.src[cstart:ps.pos])
		if !validSQLState(code) || (!ps.eof() && (isDigit(ps.src[ps.pos]) || isLetter(ps.src[ps.pos]))) {
			ps.pos = cstart
			return f, ps.fail("a five-character SQLSTATE such as 40001")
		}
		f.Code = code
	case KindLatency:
		if !ps.consume("=") {
			return f, ps.fail("'=' and a duration after latency")
		}
		dstart := ps.pos
		for !ps.eof() && ps.src[ps.pos] != ',' && ps.src[ps.pos] != ' ' {
			ps.pos++
		}
		d, err := time.ParseDuration(ps.src[dstart:ps.pos])
		if err != nil || d <= 0 {
			ps.pos = dstart
			return f, ps.fail("a positive duration such as 50ms")
		}
		f.Delay = d
	}
	return f, nil
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
