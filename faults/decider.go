package faults

import (
	"math/rand/v2"
)

// Decider decides which steps of a run fail and how. An injector (Injector
// or PgxInjector) records every step and asks its decider about each one, in
// step order, with the injector's lock held; the injector then carries the
// fault out. A Plan is one decider (Plan.Decider: a fault at step N or at the
// Nth matching step); Rate another (a seeded chance at every step). Steps
// the injector answers itself (a statement of an aborted transaction, a call
// on a connection a fault broke) are recorded but not decided.
type Decider interface {
	// Decide returns the rule to fire at st and true, or false to let the
	// step go on. The rule's Fault is what the injector carries out; its
	// target (Step, or Match, Pattern and Nth) is what Firing.Rule reports.
	Decide(st *Step) (Rule, bool)
}

// planDecider fires the rules of a plan, each at most once.
type planDecider struct {
	rules   []Rule
	matched []int
	done    []bool
	// commitAmbiguous: a step rule whose fault is ambiguous is not fired
	// (nor spent) at a step other than a commit.
	commitAmbiguous bool
}

// Decider returns a decider that fires the plan's rules: a step rule at its
// step, a match rule at the Nth step it matches; each rule fires at most
// once, and when two rules target the same step the first one fires (the
// match counts of the others still count that step).
func (p Plan) Decider() Decider { return p.decider() }

func (p Plan) decider() *planDecider {
	return &planDecider{rules: append([]Rule(nil), p.Rules...), matched: make([]int, len(p.Rules)), done: make([]bool, len(p.Rules))}
}

// Decide implements Decider.
func (d *planDecider) Decide(st *Step) (Rule, bool) {
	ri := -1
	for n := range d.rules {
		if d.done[n] {
			continue
		}
		r := &d.rules[n]
		hit := r.Step == st.Index
		if r.matches(st) {
			d.matched[n]++
			hit = d.matched[n] == r.Nth
		}
		if hit && d.commitAmbiguous && r.Fault.Kind == KindAmbiguous && st.Kind != StepCommit {
			continue
		}
		if hit && ri < 0 {
			ri = n
		}
	}
	if ri < 0 {
		return Rule{}, false
	}
	d.done[ri] = true
	return d.rules[ri], true
}

// FaultSet says which faults may fire at a step: Rate draws among them.
// Applicable and ApplicablePgx, narrowed to what a run wants, are the usual
// sources.
type FaultSet func(st *Step) []Fault

// Rate is a Decider that fails each step with probability P, with a fault
// drawn among the faults its FaultSet offers at the step (a step offered
// none is never failed and draws nothing). Every draw comes from a
// generator seeded with the seed alone, so the same seed and the same
// steps give the same faults. Rules it fires target their step by index
// (step=N). Create one with NewRate; it is not safe for concurrent use
// (an injector calls it under its lock).
type Rate struct {
	p   float64
	set FaultSet
	rng *rand.Rand
}

// NewRate returns a Rate deciding with probability p (0..1) at each step,
// among the faults set offers there, drawn from seed.
func NewRate(seed int64, p float64, set FaultSet) *Rate {
	return &Rate{p: p, set: set, rng: rand.New(rand.NewPCG(uint64(seed), 0x7a7e_5eed_dec1de))}
}

// Decide implements Decider.
func (r *Rate) Decide(st *Step) (Rule, bool) {
	if r.p <= 0 {
		return Rule{}, false
	}
	fs := r.set(st)
	if len(fs) == 0 || r.rng.Float64() >= r.p {
		return Rule{}, false
	}
	return Rule{Step: st.Index, Fault: fs[r.rng.IntN(len(fs))]}, true
}
