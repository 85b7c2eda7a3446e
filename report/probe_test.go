package report_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/probes"
	"github.com/sessionsafe/sessionsafe/report"
)

// TestAddProbe: a collateral failure is linked to the leaks of the goroutine
// that held what it waited for, and comes after them; a probe's findings
// link to nothing of another probe's.
func TestAddProbe(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := report.New("probes", nil, 1, start)
	r.AddProbe(probes.Result{Probe: probes.ProbeConcurrent, Operation: "Transfer", Seed: 1, Findings: []probes.Finding{
		{Probe: probes.ProbeConcurrent, Operation: "Transfer", Check: probes.CheckCollateral, Round: 0, Goroutine: 1, Holder: 2, Message: "context canceled"},
		{Probe: probes.ProbeConcurrent, Operation: "Transfer", Check: "pool", Leak: true, Round: 0, Goroutine: 2, Holder: -1,
			Message: "1 connection still in use", Stack: "acquired by bank.leaksLockOnRefusal.execTx at bank/probes_test.go:206"},
		{Probe: probes.ProbeConcurrent, Operation: "Transfer", Check: "server", Leak: true, Round: 0, Goroutine: 3, Holder: -1, Message: "idle in transaction"},
	}})
	r.AddProbe(probes.Result{Probe: probes.ProbePoolOfOne, Operation: "ListAccounts", Seed: 1, Findings: []probes.Finding{
		{Probe: probes.ProbePoolOfOne, Operation: "ListAccounts", Check: probes.CheckSecondConnection, Goroutine: 0, Holder: -1, Message: "asked for a second connection"},
	}})
	r.Finish(start.Add(time.Second))
	type want struct {
		inv, kind string
		causedBy  []string
	}
	wants := []want{
		{"pool", report.KindLeak, nil},
		{"server", report.KindLeak, nil},
		{probes.CheckCollateral, report.KindSymptom, []string{"V1"}}, // goroutine 2's leak, not goroutine 3's
		{probes.CheckSecondConnection, report.KindSymptom, nil},      // another probe's: no link
	}
	if len(r.Violations) != len(wants) {
		t.Fatalf("got %d violations; want %d", len(r.Violations), len(wants))
	}
	for i, w := range wants {
		v := r.Violations[i]
		if v.Invariant != w.inv || v.Kind != w.kind || !slices.Equal(v.CausedBy, w.causedBy) || v.Source != "probe" {
			t.Errorf("violation %d: got %s %s %s caused by %v; want probe %s %s caused by %v", i+1, v.Source, v.Invariant, v.Kind, v.CausedBy, w.inv, w.kind, w.causedBy)
		}
	}
	if v := r.Violations[0]; v.Attribution == "" || v.Message != "probe concurrent, round 0, goroutine 2: 1 connection still in use" {
		t.Errorf("the root cause reads %q with stack %q; want where it was and its stack", v.Message, v.Attribution)
	}
}
