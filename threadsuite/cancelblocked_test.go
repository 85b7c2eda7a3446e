package threadsuite

import (
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/mutant"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// TestCancelBlocked: the cancel-blocked fault (in the default matrix, which
// the catalog passes clean) catches the planted ContextNotPassed — the unit
// of work gives the database context.WithoutCancel, so a cancelled request
// stays blocked on a lock — as a context-honoured finding at every such
// case.
func TestCancelBlocked(t *testing.T) {
	cfg := pgConfig(t)
	cfg.Only = func(c scenarios.Case) bool { return c.Fault.Kind == faults.KindCancelBlocked }
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
