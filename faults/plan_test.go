package faults_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
)

func TestParsePlanRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		canonical string // "" means text itself
		want      faults.Plan
	}{
		{"empty", "", "", faults.Plan{}},
		{"step-pgerr", "step=7:pgerr=40001", "", faults.Plan{Rules: []faults.Rule{{Step: 7, Fault: faults.Fault{Kind: faults.KindPgErr, Code: "40001"}}}}},
		{"match-ambiguous", "match=commit#1:ambiguous", "", faults.Plan{Rules: []faults.Rule{{Match: faults.StepCommit, Nth: 1, Fault: faults.Fault{Kind: faults.KindAmbiguous}}}}},
		{"match-default-nth", "match=commit:cut-after", "match=commit#1:cut-after", faults.Plan{Rules: []faults.Rule{{Match: faults.StepCommit, Nth: 1, Fault: faults.Fault{Kind: faults.KindCutAfter}}}}},
		{"match-pattern", "match=exec~UPDATE threads#2:badconn", "", faults.Plan{Rules: []faults.Rule{{Match: faults.StepExec, Pattern: "UPDATE threads", Nth: 2, Fault: faults.Fault{Kind: faults.KindBadConn}}}}},
		{"latency", "step=3:latency=1500ms", "step=3:latency=1.5s", faults.Plan{Rules: []faults.Rule{{Step: 3, Fault: faults.Fault{Kind: faults.KindLatency, Delay: 1500 * time.Millisecond}}}}},
		{"lower-sqlstate", "step=1:pgerr=40p01", "step=1:pgerr=40P01", faults.Plan{Rules: []faults.Rule{{Step: 1, Fault: faults.Fault{Kind: faults.KindPgErr, Code: "40P01"}}}}},
		{"several", " step=1:error, match=next#3:panic,step=9:cancel ", "step=1:error,match=next#3:panic,step=9:cancel", faults.Plan{Rules: []faults.Rule{
			{Step: 1, Fault: faults.Fault{Kind: faults.KindError}},
			{Match: faults.StepNext, Nth: 3, Fault: faults.Fault{Kind: faults.KindPanic}},
			{Step: 9, Fault: faults.Fault{Kind: faults.KindCancel}},
		}}},
		{"server-kinds", "step=2:terminate,step=3:lock,step=4:stmt-timeout,step=5:cut", "", faults.Plan{Rules: []faults.Rule{
			{Step: 2, Fault: faults.Fault{Kind: faults.KindTerminate}},
			{Step: 3, Fault: faults.Fault{Kind: faults.KindLock}},
			{Step: 4, Fault: faults.Fault{Kind: faults.KindStmtTimeout}},
			{Step: 5, Fault: faults.Fault{Kind: faults.KindCut}},
		}}},
		{"cancel-blocked", "step=3:cancel-blocked,match=exec~UPDATE#1:cancel", "", faults.Plan{Rules: []faults.Rule{
			{Step: 3, Fault: faults.Fault{Kind: faults.KindCancelBlocked}},
			{Match: faults.StepExec, Pattern: "UPDATE", Nth: 1, Fault: faults.Fault{Kind: faults.KindCancel}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := faults.ParsePlan(tt.text)
			if err != nil {
				t.Fatalf("ParsePlan(%q): %v", tt.text, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePlan(%q) = %#v; want %#v", tt.text, got, tt.want)
			}
			canonical := tt.canonical
			if canonical == "" {
				canonical = tt.text
			}
			if s := got.String(); s != canonical {
				t.Errorf("String() = %q; want %q", s, canonical)
			}
			again, err := faults.ParsePlan(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("ParsePlan(String()) = %#v, %v; want %#v", again, err, got)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParsePlanErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // in the error
	}{
		{"no-target", "commit:error", `at offset 0: expected "step=" or "match="`},
		{"step-zero", "step=0:error", "at offset 5: expected a step number (1 to 1073741824)"},
		{"step-not-number", "step=x:error", "at offset 5: expected a step number"},
		{"missing-colon", "step=3", "at offset 6: expected ':' and a fault, found the end of the plan"},
		{"unknown-step-kind", "match=comit#1:error", "at offset 6: expected a step kind (connect, begin"},
		{"empty-pattern", "match=exec~#1:error", "at offset 11: expected an SQL pattern after '~'"},
		{"unknown-fault", "step=3:explode", "at offset 7: expected a fault (error, pgerr,"},
		{"pgerr-no-code", "step=3:pgerr", "at offset 12: expected '=' and an SQLSTATE after pgerr"},
		{"pgerr-short-code", "step=3:pgerr=4000", "at offset 13: expected a five-character SQLSTATE"},
		{"pgerr-long-code", "step=3:pgerr=400011", "at offset 13: expected a five-character SQLSTATE"},
		{"latency-negative", "step=3:latency=-1s", "at offset 15: expected a positive duration"},
		{"latency-bad", "step=3:latency=soon", "at offset 15: expected a positive duration"},
		{"trailing", "step=3:error;", "at offset 12: expected ',' between rules or the end of the plan"},
		{"trailing-comma", "step=3:error,", `at offset 13: expected "step=" or "match="`},
		{"nth-zero", "match=exec#0:error", "at offset 11: expected the number of the match after '#'"},
		{"ambiguous-not-commit", "match=exec#1:ambiguous", "ambiguous applies to commit steps only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := faults.ParsePlan(tt.text)
			if err == nil {
				t.Fatalf("ParsePlan(%q) = nil error; want one containing %q", tt.text, tt.want)
			}
			if !errors.Is(err, faults.ErrPlanSyntax) {
				t.Errorf("error %v does not wrap ErrPlanSyntax", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParsePlan(%q) error:\n%v\nwant it to contain %q", tt.text, err, tt.want)
			}
		})
	}
}

func FuzzParsePlan(f *testing.F) {
	for _, s := range []string{
		"", "step=7:pgerr=40001", "match=commit#1:ambiguous", "match=exec~UPDATE t#2:badconn",
		"step=1:latency=50ms,step=2:cancel", "match=next:panic", "step=3:pgerr=40p01", "step=1:latency=1h1m",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := faults.ParsePlan(s)
		if err != nil {
			if !errors.Is(err, faults.ErrPlanSyntax) {
				t.Fatalf("ParsePlan(%q) error %v does not wrap ErrPlanSyntax", s, err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePlan(%q) gave an invalid plan: %v", s, err)
		}
		text := p.String()
		again, err := faults.ParsePlan(text)
		if err != nil {
			t.Fatalf("ParsePlan(%q).String() = %q does not parse: %v", s, text, err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip of %q through %q: got %#v; want %#v", s, text, again, p)
		}
		if again.String() != text {
			t.Fatalf("String not stable: %q then %q", text, again.String())
		}
	})
}

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name string
		rule faults.Rule
		ok   bool
	}{
		{"step", faults.Rule{Step: 1, Fault: faults.Fault{Kind: faults.KindError}}, true},
		{"no-target", faults.Rule{Fault: faults.Fault{Kind: faults.KindError}}, false},
		{"step-and-match", faults.Rule{Step: 1, Match: faults.StepExec, Fault: faults.Fault{Kind: faults.KindError}}, false},
		{"pattern-with-comma", faults.Rule{Match: faults.StepExec, Nth: 1, Pattern: "a,b", Fault: faults.Fault{Kind: faults.KindError}}, false},
		{"latency-without-delay", faults.Rule{Step: 1, Fault: faults.Fault{Kind: faults.KindLatency}}, false},
		{"code-on-error", faults.Rule{Step: 1, Fault: faults.Fault{Kind: faults.KindError, Code: "40001"}}, false},
		{"bad-code", faults.Rule{Step: 1, Fault: faults.Fault{Kind: faults.KindPgErr, Code: "4000!"}}, false},
		{"unknown-kind", faults.Rule{Step: 1, Fault: faults.Fault{Kind: 99}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate() = %v; want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, faults.ErrInvalidFault) {
				t.Errorf("error %v does not wrap ErrInvalidFault", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	tests := []struct {
		name, sql, want string
	}{
		{"whitespace", "SELECT  id\n\tFROM t ", "SELECT id FROM t"},
		{"placeholders-kept", "UPDATE t SET a = $1 WHERE id = $2", "UPDATE t SET a = $1 WHERE id = $2"},
		{"numbers", "SELECT 1, 2.5, 1e3 FROM t LIMIT 10", "SELECT ?, ?, ? FROM t LIMIT ?"},
		{"identifiers-with-digits", "SELECT t1.c2 FROM t1", "SELECT t1.c2 FROM t1"},
		{"strings", "SELECT 'it''s', E'a\\'b' FROM t WHERE s = 'x'", "SELECT ?, ? FROM t WHERE s = ?"},
		{"dollar-quoted", "SELECT $$x 'y'$$, $tag$z$tag$", "SELECT ?, ?"},
		{"comments", "SELECT 1 -- one\n/* two */ FROM t", "SELECT ? FROM t"},
		{"quoted-identifier", `SELECT "Col 1" FROM "T"`, `SELECT "Col 1" FROM "T"`},
		{"casts", "SELECT '{}'::jsonb || $1::jsonb", "SELECT ?::jsonb || $1::jsonb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := faults.Fingerprint(tt.sql); got != tt.want {
				t.Errorf("Fingerprint(%q) = %q; want %q", tt.sql, got, tt.want)
			}
		})
	}
}

func TestApplicable(t *testing.T) {
	for _, backend := range []faults.Backend{faults.Mock, faults.Postgres} {
		for _, k := range faults.StepKinds() {
			t.Run(backend.String()+"/"+k.String(), func(t *testing.T) {
				for _, f := range faults.Applicable(k, backend) {
					if err := f.Validate(); err != nil {
						t.Errorf("Applicable gave an invalid fault: %v", err)
					}
					if backend == faults.Mock && (f.Kind.NeedsWire() || f.Kind.NeedsServer()) {
						t.Errorf("Applicable(%s, mock) includes %s, which needs real Postgres", k, f)
					}
					if f.Kind == faults.KindAmbiguous && k != faults.StepCommit {
						t.Errorf("ambiguous offered at %s", k)
					}
				}
			})
		}
	}
	if fs := faults.Applicable(faults.StepReset, faults.Mock); len(fs) != 0 {
		t.Errorf("Applicable(reset, mock) = %v; want none (sqlmock conns have no session reset)", fs)
	}
	var hasAmbiguous bool
	for _, f := range faults.Applicable(faults.StepCommit, faults.Postgres) {
		hasAmbiguous = hasAmbiguous || f.Kind == faults.KindAmbiguous
	}
	if !hasAmbiguous {
		t.Errorf("Applicable(commit, postgres) lacks ambiguous")
	}
}

func sampleTrace() faults.Trace {
	kinds := []faults.StepKind{faults.StepConnect, faults.StepBegin, faults.StepExec, faults.StepQuery, faults.StepNext, faults.StepNext, faults.StepRowsClose, faults.StepCommit}
	tr := make(faults.Trace, len(kinds))
	for n, k := range kinds {
		tr[n] = faults.Step{Index: n + 1, Kind: k, Conn: 1}
	}
	return tr
}

func TestRandomPlan(t *testing.T) {
	rates := faults.Rates{
		Backend: faults.Postgres,
		Kinds:   map[faults.Kind]float64{faults.KindPgErr: 0.3, faults.KindBadConn: 0.2, faults.KindLatency: 0.2, faults.KindAmbiguous: 0.5},
		Max:     3,
	}
	tr := sampleTrace()
	distinct := map[string]bool{}
	for seed := int64(1); seed <= 50; seed++ {
		p := faults.RandomPlan(seed, tr, rates)
		if q := faults.RandomPlan(seed, tr, rates); !reflect.DeepEqual(p, q) {
			t.Fatalf("seed %d: two plans differ: %s and %s", seed, p, q)
		}
		if len(p.Rules) > rates.Max {
			t.Errorf("seed %d: %d rules; want at most %d", seed, len(p.Rules), rates.Max)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("seed %d: invalid plan %s: %v", seed, p, err)
		}
		for _, r := range p.Rules {
			k := tr[r.Step-1].Kind
			if !containsFault(faults.Applicable(k, rates.Backend), r.Fault) {
				t.Errorf("seed %d: %s at a %s step, where it does not apply", seed, r.Fault, k)
			}
			if _, ok := rates.Kinds[r.Fault.Kind]; !ok {
				t.Errorf("seed %d: kind %s has no rate", seed, r.Fault.Kind)
			}
		}
		distinct[p.String()] = true
	}
	if len(distinct) < 10 {
		t.Errorf("50 seeds gave only %d distinct plans: %v", len(distinct), distinct)
	}
	if p := faults.RandomPlan(1, tr, faults.Rates{}); len(p.Rules) != 0 {
		t.Errorf("no rates gave plan %s; want the empty plan", p)
	}
}

func containsFault(fs []faults.Fault, f faults.Fault) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}
