package probes

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
)

// trace is a transfer's clean trace, as database/sql records it.
var trace = faults.Trace{
	{Index: 1, Kind: faults.StepBegin},
	{Index: 2, Kind: faults.StepQuery, SQL: "UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance", Fingerprint: "update accounts set balance = balance + $2 where id = $1 returning balance"},
	{Index: 3, Kind: faults.StepNext, SQL: "UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance", Fingerprint: "update accounts set balance = balance + $2 where id = $1 returning balance"},
	{Index: 4, Kind: faults.StepQuery, SQL: "UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance", Fingerprint: "update accounts set balance = balance + $2 where id = $1 returning balance"},
	{Index: 5, Kind: faults.StepNext, SQL: "UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance", Fingerprint: "update accounts set balance = balance + $2 where id = $1 returning balance"},
	{Index: 6, Kind: faults.StepCommit},
	{Index: 7, Kind: faults.StepReset},
}

// TestMatchRule: a rule aims at its step by kind, SQL and count, so that a
// connect or reset step before it (a cold pool, a reconnect) does not move it.
func TestMatchRule(t *testing.T) {
	tests := []struct {
		name string
		step int
		want string
	}{
		{"begin", 1, "match=begin#1"},
		{"second update", 4, "match=query~update accounts set balance = balance + $2 where id = $1 returning balance#2"},
		{"commit", 6, "match=commit#1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := matchRule(trace[:tt.step], trace[tt.step-1])
			r.Fault = faults.Fault{Kind: faults.KindError}
			if got := r.String(); got != tt.want+":error" {
				t.Errorf("got %s; want %s:error", got, tt.want)
			}
			// the same step after a connect and a reset: the rule still hits it, and only it
			moved := append(faults.Trace{{Kind: faults.StepConnect}, {Kind: faults.StepReset}}, trace...)
			hits := 0
			for i, s := range moved {
				if s.Kind == r.Match && ruleMatches(r.Pattern, s) {
					hits++
					if hits == r.Nth && i != tt.step+1 {
						t.Errorf("on a trace with a connect and a reset first, the rule hits step %d; want %d", i+1, tt.step+2)
					}
				}
			}
		})
	}
}

// TestScheduleDeterministic: the same seed hands the same plans to the same
// runs, round after round; another seed, others; every pair is handed out.
func TestScheduleDeterministic(t *testing.T) {
	p := &probe{cfg: Config{Seed: 7}.withDefaults()}
	plansOf := func(seed int64) []string {
		cfg := p.cfg
		cfg.Seed = seed
		s := newSchedule(cfg, p.pairs(trace, false))
		var out []string
		for r := 0; !s.done() && r < cfg.MaxRounds; r++ {
			for g, ks := range s.round(r) {
				for k, pl := range ks {
					out = append(out, fmt.Sprintf("%d/%d/%d %s", r, g, k, pl))
				}
			}
		}
		return out
	}
	a, b, c := plansOf(7), plansOf(7), plansOf(8)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 7 twice gave different plans:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 7 and 8 gave the same plans")
	}
	pairs := p.pairs(trace, false)
	seen := map[string]bool{}
	for _, pl := range a {
		seen[pl[strings.IndexByte(pl, ' ')+1:]] = true
	}
	for _, r := range pairs {
		if !seen[faults.Plan{Rules: []faults.Rule{r}}.String()] {
			t.Errorf("pair %s was never handed out", r)
		}
	}
	if len(pairs) == 0 {
		t.Fatal("no pair")
	}
}
