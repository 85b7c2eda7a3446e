package threadsuite

import (
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/mutant"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// TestCancelBlocked puts every catalog operation through the opt-in
// cancel-blocked fault on PostgreSQL: at each statement that names a table,
// the caller's context is cancelled while the statement waits on a lock
// another session holds, and the call must return promptly with it. With
// the planted ContextNotPassed (the unit of work gives the database
// context.WithoutCancel) every such case is a context-honoured finding.
func TestCancelBlocked(t *testing.T) {
	cfg := pgConfig(t)
	cfg.CancelBlocked = true
	cfg.Only = func(c scenarios.Case) bool { return c.Fault.Kind == faults.KindCancelBlocked }
	t.Run("catalog", func(t *testing.T) {
		scenarios.RunTests(t, cfg, Catalog()...)
	})
	t.Run("ContextNotPassed", func(t *testing.T) {
		for _, op := range Catalog() {
			if op.Name != "GetThread" && op.Name != "DeleteThread" {
				continue
			}
			rep, err := scenarios.Run(t.Context(), cfg, planted(op, mutant.ContextNotPassed))
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Results) == 0 {
				t.Fatalf("%s: no cancel-blocked case", op.Name)
			}
			for _, res := range rep.Results {
				found := false
				for _, f := range res.Findings {
					found = found || f.Invariant == scenarios.InvContext
				}
				if !found {
					t.Errorf("%s: got %d findings, none %q; want the blocked call that ignores the cancellation named", res.Case, len(res.Findings), scenarios.InvContext)
				}
			}
		}
	})
}
