package faults

import (
	"math/rand/v2"
	"time"
)

// Rates say how RandomPlan plants faults.
type Rates struct {
	// Backend decides which faults may be planted at a step (Applicable);
	// zero means Mock.
	Backend Backend
	// Kinds is the chance, between 0 and 1, that a step gets a fault of each
	// kind (considered in the order of Kinds, among the faults Applicable
	// allows at the step). A kind not in the map is never chosen.
	Kinds map[Kind]float64
	// Max is the most rules in the plan; zero means 1.
	Max int
	// Latency is the delay of latency faults; zero means DefaultLatency.
	Latency time.Duration
}

// RandomPlan plants faults at steps of t, chosen with the rates from a
// generator seeded with seed alone: the same seed, trace and rates give the
// same plan. Rules target steps by index (step=N); when a pgerr is chosen
// its code is drawn among the codes Applicable allows at the step.
func RandomPlan(seed int64, t Trace, r Rates) Plan {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5e55_10a5_afe))
	backend := r.Backend
	if backend == 0 {
		backend = Mock
	}
	maxRules := r.Max
	if maxRules <= 0 {
		maxRules = 1
	}
	latency := r.Latency
	if latency <= 0 {
		latency = DefaultLatency
	}
	var p Plan
	for _, st := range t {
		if len(p.Rules) >= maxRules {
			break
		}
		app := Applicable(st.Kind, backend)
		for _, k := range Kinds() {
			rate := r.Kinds[k]
			if rate <= 0 {
				continue
			}
			var options []Fault
			for _, f := range app {
				if f.Kind == KindPanic && st.Prepared {
					continue // database/sql leaks the conn of a prepared exec that panics
				}
				if f.Kind == k {
					options = append(options, f)
				}
			}
			if len(options) == 0 {
				continue
			}
			if rng.Float64() >= rate {
				continue
			}
			f := options[rng.IntN(len(options))]
			if f.Kind == KindLatency {
				f.Delay = latency
			}
			p.Rules = append(p.Rules, Rule{Step: st.Index, Fault: f})
			break
		}
	}
	return p
}
