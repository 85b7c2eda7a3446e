package chaos_test

import (
	"testing"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/faults"
)

// TestFaultSets: every fault a run draws is one the injector can play at that step — valid,
// offered there by faults.Applicable (faults.ApplicablePgx for pgx) — terminate only with a
// server, panics only when asked for and only at rows-next, nothing at a rollback or close.
func TestFaultSets(t *testing.T) {
	kinds := []faults.StepKind{faults.StepConnect, faults.StepBegin, faults.StepPrepare, faults.StepExec, faults.StepQuery,
		faults.StepNext, faults.StepRowsClose, faults.StepCommit, faults.StepRollback, faults.StepReset, faults.StepClose}
	sets := []struct {
		name           string
		set            faults.FaultSet
		pgx            bool
		server, panics bool
	}{
		{"sql", chaos.Faults(false, false), false, false, false},
		{"sql-server", chaos.Faults(true, false), false, true, false},
		{"sql-server-panics", chaos.Faults(true, true), false, true, true},
		{"pgx", chaos.PgxFaults(), true, true, false},
	}
	for _, tt := range sets {
		t.Run(tt.name, func(t *testing.T) {
			total := 0
			for _, k := range kinds {
				st := faults.Step{Kind: k}
				offered := faults.Applicable(k, faults.Postgres)
				if tt.pgx {
					offered = faults.ApplicablePgx(k)
				}
				for _, f := range tt.set(&st) {
					total++
					if err := f.Validate(); err != nil {
						t.Errorf("%s: %s does not validate: %v", k, f, err)
					}
					found := false
					for _, o := range offered {
						found = found || o.Kind == f.Kind && o.Code == f.Code
					}
					switch {
					case !found:
						t.Errorf("%s: %s is not offered there", k, f)
					case f.Kind == faults.KindTerminate && !tt.server:
						t.Errorf("%s: terminate without a server", k)
					case f.Kind == faults.KindPanic && (!tt.panics || k != faults.StepNext):
						t.Errorf("%s: a panic (panics %v)", k, tt.panics)
					case k == faults.StepRollback || k == faults.StepClose || k == faults.StepReset:
						t.Errorf("%s: %s at a step chaos leaves alone", k, f)
					}
				}
			}
			if total == 0 {
				t.Error("the set offers nothing")
			}
		})
	}
}
