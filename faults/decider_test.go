package faults_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
)

// rateSteps is a run's steps, for deciding.
func rateSteps(n int) []faults.Step {
	kinds := []faults.StepKind{faults.StepBegin, faults.StepExec, faults.StepQuery, faults.StepNext, faults.StepCommit}
	out := make([]faults.Step, n)
	for i := range out {
		out[i] = faults.Step{Index: i + 1, Kind: kinds[i%len(kinds)]}
	}
	return out
}

func decideAll(d faults.Decider, steps []faults.Step) []string {
	var out []string
	for i := range steps {
		if r, ok := d.Decide(&steps[i]); ok {
			out = append(out, r.String())
		}
	}
	return out
}

func mockSet(st *faults.Step) []faults.Fault { return faults.Applicable(st.Kind, faults.Mock) }

func TestRate(t *testing.T) {
	steps := rateSteps(400)
	tests := []struct {
		name     string
		p        float64
		set      faults.FaultSet
		min, max int // firings expected among the 400 steps
	}{
		{"never", 0, mockSet, 0, 0},
		{"always", 1, mockSet, 400, 400},
		{"tenth", 0.1, mockSet, 20, 70},
		{"empty-set", 1, func(*faults.Step) []faults.Fault { return nil }, 0, 0},
		{"commit-only", 1, func(st *faults.Step) []faults.Fault {
			if st.Kind != faults.StepCommit {
				return nil
			}
			return faults.Applicable(st.Kind, faults.Mock)
		}, 80, 80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const seed = 42
			got := decideAll(faults.NewRate(seed, tt.p, tt.set), steps)
			if again := decideAll(faults.NewRate(seed, tt.p, tt.set), steps); !reflect.DeepEqual(got, again) {
				t.Fatalf("seed %d decided %v, then %v: not reproducible", seed, got, again)
			}
			if len(got) < tt.min || len(got) > tt.max {
				t.Errorf("seed %d: %d firings in %d steps; want %d..%d", seed, len(got), len(steps), tt.min, tt.max)
			}
			for _, r := range got {
				rule, err := faults.ParsePlan(r)
				if err != nil || rule.Validate() != nil {
					t.Errorf("rule %q does not parse or validate: %v", r, err)
				}
			}
		})
	}
	if a, b := decideAll(faults.NewRate(1, 0.3, mockSet), steps), decideAll(faults.NewRate(2, 0.3, mockSet), steps); reflect.DeepEqual(a, b) {
		t.Errorf("seeds 1 and 2 decided the same %v", a)
	}
}

// TestPlanDecider: a plan decides as Arm plays it: a step rule at its step, a match rule at
// its nth match, each rule once, the first of two rules on one step.
func TestPlanDecider(t *testing.T) {
	steps := rateSteps(12)
	got := decideAll(faults.MustParsePlan("match=exec#2:badconn,step=7:pgerr=40001,step=2:error,step=3:cancel").Decider(), steps)
	// exec#2 is step 7: the first rule fires there, and step=7 never does.
	want := []string{"step=2:error", "step=3:cancel", "match=exec#2:badconn"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fired %v; want %v", got, want)
	}
}

// TestInjectorUsesRate: the Injector plays a Rate's faults as it plays a plan's, and Use
// starts a new run.
func TestInjectorUsesRate(t *testing.T) {
	inj := faults.NewInjector()
	db, mock := openMockInjected(t, inj)
	commitOnly := func(st *faults.Step) []faults.Fault {
		if st.Kind != faults.StepCommit {
			return nil
		}
		return []faults.Fault{{Kind: faults.KindPgErr, Code: faults.CodeSerializationFailure}}
	}
	inj.Use(faults.NewRate(7, 1, commitOnly))
	expectTxOp(mock, 4, false)
	err := txOp(context.Background(), db)
	if pgErrCode(err) != faults.CodeSerializationFailure {
		t.Fatalf("txOp = %v; want the injected 40001 at commit", err)
	}
	fired := inj.Fired()
	if len(fired) != 1 || fired[0].Step.Kind != faults.StepCommit || fired[0].Rule.String() != "step=7:pgerr=40001" || inj.FiredCount() != 1 {
		t.Errorf("fired %v (count %d); want step=7:pgerr=40001 at the commit", fired, inj.FiredCount())
	}
	inj.Use(nil)
	if len(inj.Fired()) != 0 || len(inj.Trace()) != 0 {
		t.Errorf("after Use(nil): fired %v, trace %v; want a new run", inj.Fired(), inj.Trace())
	}
	expectTxOp(mock, 4, false)
	if err := txOp(context.Background(), db); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("txOp with no decider = %v; want success", err)
	}
	if n := inj.FiredCount(); n != 0 {
		t.Errorf("%d fired with no decider", n)
	}
}
