package chaos

import "sync/atomic"

// Counters are a run's live counts, safe to read while it runs.
type Counters struct {
	Ops        atomic.Int64
	Errors     atomic.Int64
	Faults     atomic.Int64
	Violations atomic.Int64
}
