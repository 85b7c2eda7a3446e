package chaos

import (
	"math/rand/v2"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// RateFaults injects faults at a seeded rate into every eligible driver step, for as long
// as it lives (sessionsafe serve): the same fault kinds as a chaos run.
type RateFaults struct{ in *injector }

// NewRateFaults returns faults firing with probability rate at each eligible step, drawn
// from seed.
func NewRateFaults(seed int64, rate float64) *RateFaults {
	in := &injector{rate: rate}
	in.arm(rand.New(rand.NewPCG(uint64(seed), saltFaults)), nil)
	return &RateFaults{in: in}
}

// Hooks returns the driver hooks to wrap a connector with (drvwrap.WrapConnector).
func (r *RateFaults) Hooks() drvwrap.Hooks { return r.in.hooks() }

// Fired returns how many faults fired, and the latest of them (at most 64).
func (r *RateFaults) Fired() (int64, []string) {
	r.in.mu.Lock()
	defer r.in.mu.Unlock()
	return r.in.faults, append([]string(nil), r.in.fired...)
}
