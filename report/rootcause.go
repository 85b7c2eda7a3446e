package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The kinds of violation (Violation.Kind). A report leads with its root causes: every
// leak comes before every symptom, so that a reader meets "rows left open at
// store.go:88" before the "driver: bad connection" errors it led to.
const (
	// KindLeak is something left behind — a connection not returned, rows left open, a
	// transaction or a lock held, a goroutine, session state on a pooled connection — with
	// where it was taken: a root cause later failures may follow from.
	KindLeak = "leak"
	// KindSymptom is a failure an operation saw or an invariant that broke: an unexpected
	// error, a timeout, a lost write. It may follow from an earlier leak.
	KindSymptom = "symptom"
)

// leakInvariants are the invariants, as matrix, probe and chaos runs name them, that are
// about something left behind.
var leakInvariants = []string{
	"pool", "server", "goroutines", "long-transaction", "session-state", "session", "prepared-transaction",
}

// LeakInvariant reports whether the invariant inv is about something left behind (a
// connection, rows, a transaction, a lock, a goroutine, session state): a violation of it
// is a root cause, KindLeak. Every other invariant is a symptom.
func LeakInvariant(inv string) bool { return slices.Contains(leakInvariants, inv) }

// KindOf returns the kind of v: its Kind when set, else KindLeak for a leak invariant
// (LeakInvariant) and KindSymptom for any other.
func KindOf(v Violation) string {
	if v.Kind != "" {
		return v.Kind
	}
	if LeakInvariant(v.Invariant) {
		return KindLeak
	}
	return KindSymptom
}

// RootCausesFirst puts the violations in the order a reader should meet them, and links
// each symptom to the leaks it may follow from. Finish calls it; a program that writes
// violations of its own may call it too. In place, it:
//
//   - sets each Kind left empty (KindOf);
//   - adds to each symptom's CausedBy every leak there when it was seen — a leak whose
//     Seq is not above the symptom's (the order of vs when either Seq is 0) — on the same
//     Backend and Source, in the same Scope (a leak with an empty Scope reaches every
//     scope), unless CausedBy was set already;
//   - orders the leaks first, then the symptoms, each in the order seen;
//   - numbers the violations V1, V2, ... in that order, rewriting CausedBy to match.
//
// When no violation has a Seq, each gets its place in vs as its Seq, so that the order
// seen survives the reordering. Give every violation a Seq, or none: then calling it again
// changes nothing.
func RootCausesFirst(vs []Violation) {
	type item struct {
		v   Violation
		pos int
	}
	items := make([]item, len(vs))
	noSeq := !slices.ContainsFunc(vs, func(v Violation) bool { return v.Seq != 0 })
	for i, v := range vs {
		v.Kind = KindOf(v)
		if noSeq {
			v.Seq = int64(i + 1) // the order given is the order seen
		}
		items[i] = item{v, i}
	}
	seen := func(a, b item) int { // the order seen: Seq when both have one, else input order
		if a.v.Seq != 0 && b.v.Seq != 0 && a.v.Seq != b.v.Seq {
			if a.v.Seq < b.v.Seq {
				return -1
			}
			return 1
		}
		return a.pos - b.pos
	}
	// before reports whether leak l was there when symptom s was seen: seen earlier, or
	// at the same Seq (one run: a leak is found after the run that left it, by the checks
	// that follow it, yet was there during the run).
	before := func(l, s item) bool {
		if l.v.Seq != 0 && s.v.Seq != 0 {
			return l.v.Seq <= s.v.Seq
		}
		return l.pos < s.pos
	}
	for i := range items {
		s := &items[i]
		if s.v.Kind == KindLeak || len(s.v.CausedBy) > 0 {
			continue
		}
		for _, l := range items {
			if l.v.Kind == KindLeak && l.v.Backend == s.v.Backend && l.v.Source == s.v.Source &&
				(l.v.Scope == "" || l.v.Scope == s.v.Scope) && before(l, *s) {
				s.v.CausedBy = append(s.v.CausedBy, l.v.ID)
			}
		}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		if (a.v.Kind == KindLeak) != (b.v.Kind == KindLeak) {
			if a.v.Kind == KindLeak {
				return -1
			}
			return 1
		}
		return seen(a, b)
	})
	renumber := map[string]string{}
	for i, it := range items {
		id := "V" + strconv.Itoa(i+1)
		if it.v.ID != "" {
			if _, dup := renumber[it.v.ID]; !dup {
				renumber[it.v.ID] = id
			}
		}
		it.v.ID = id
		vs[i] = it.v
	}
	for i := range vs {
		for j, c := range vs[i].CausedBy {
			if n, ok := renumber[c]; ok {
				vs[i].CausedBy[j] = n
			}
		}
	}
}

// RootCauses returns the leaks of r (after Finish: its first violations).
func (r *Report) RootCauses() []Violation {
	var out []Violation
	for _, v := range r.Violations {
		if KindOf(v) == KindLeak {
			out = append(out, v)
		}
	}
	return out
}

// followsFrom is the line a symptom's text carries about its causes: "follows from V1
// (pool), V2 (server)", or "" when it has none.
func (r *Report) followsFrom(v Violation) string {
	if len(v.CausedBy) == 0 {
		return ""
	}
	inv := map[string]string{}
	for _, o := range r.Violations {
		inv[o.ID] = o.Invariant
	}
	parts := make([]string, 0, len(v.CausedBy))
	for _, c := range v.CausedBy {
		if i := inv[c]; i != "" {
			parts = append(parts, fmt.Sprintf("%s (%s)", c, i))
		} else {
			parts = append(parts, c)
		}
	}
	return "may follow from the earlier leak " + strings.Join(parts, ", ")
}
