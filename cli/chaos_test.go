package cli

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/report"
)

// TestChaosRootCauses: a symptom of a chaos run names the earlier leak of its own worker,
// and neither the leak of another worker nor a leak found after it.
func TestChaosRootCauses(t *testing.T) {
	run := []chaos.Violation{ // in the order a run gives them: worker by worker
		{Invariant: "unexpected-error", Worker: 0, OpIndex: 1, Message: "before the leak"},
		{Invariant: "pool", Worker: 0, OpIndex: 3, Message: "rows left open"},
		{Invariant: "unexpected-error", Worker: 0, OpIndex: 7, Message: "driver: bad connection"},
		{Invariant: "unexpected-error", Worker: 1, OpIndex: 9, Message: "another worker's"},
		{Invariant: "server", Worker: 2, OpIndex: -1, Message: "at quiescence"},
		{Invariant: "goroutines", Worker: -1, OpIndex: -1, Message: "goroutines outlived the run"},
	}
	var vs []report.Violation
	for _, v := range run {
		rv := chaosViolation(v, 1, "replay")
		rv.ID = fmt.Sprintf("V%d", len(vs)+1) // as chaosPostgres numbers them
		vs = append(vs, rv)
	}
	report.RootCausesFirst(vs)
	byMsg := map[string]report.Violation{}
	for _, v := range vs {
		for _, r := range run {
			if strings.HasSuffix(v.Message, r.Message) {
				byMsg[r.Message] = v
			}
		}
	}
	leak := byMsg["rows left open"]
	if leak.ID != "V1" || leak.Kind != report.KindLeak {
		t.Errorf("the leak is %s (%s); want V1, a leak: root causes first", leak.ID, leak.Kind)
	}
	for _, c := range []struct {
		msg  string
		want []string
	}{
		{"driver: bad connection", []string{leak.ID}},
		{"before the leak", nil},
		{"another worker's", nil},
	} {
		t.Run(c.msg, func(t *testing.T) {
			if got := byMsg[c.msg].CausedBy; !slices.Equal(got, c.want) {
				t.Errorf("%q: caused by %v; want %v\nreport: %+v", c.msg, got, c.want, vs)
			}
		})
	}
}
