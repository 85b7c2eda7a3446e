package bank

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// knownFalseAlarms lists the matrix cases that fail on the correct Store
// because of the runner, not the Store: "driver/Operation/step-N-kind/fault"
// → why. TestMatrix leaves them out and TestKnownFalseAlarms requires each
// to still fail, so that this list can only shrink: a fix of the runner
// empties it.
var knownFalseAlarms = map[string]string{
	"pgx/TransferInsufficient/step-9-rollback/error":       causeRefusedRollback,
	"pgx/TransferInsufficient/step-9-rollback/pgerr=57P01": causeRefusedRollback,
	"pgx/TransferInsufficient/step-9-rollback/pgerr=08006": causeRefusedRollback,
	"pgx/TransferInsufficient/step-9-rollback/badconn":     causeRefusedRollback,
	"pgx/TransferInsufficient/step-9-rollback/cut":         causeRefusedRollback,
	"pgx/TransferInsufficient/step-9-rollback/terminate":   causeRefusedRollback,
	"pq/TransferInsufficient/step-9-rollback/error":        causeRefusedRollback,
	"pq/TransferInsufficient/step-9-rollback/pgerr=57P01":  causeRefusedRollback,
	"pq/TransferInsufficient/step-9-rollback/pgerr=08006":  causeRefusedRollback,
	"pq/TransferInsufficient/step-9-rollback/badconn":      causeRefusedRollback,
	"pq/TransferInsufficient/step-9-rollback/cut":          causeRefusedRollback,
	"pq/TransferInsufficient/step-9-rollback/terminate":    causeRefusedRollback,
}

// The causes of the known false alarms.
const (
	// causeRefusedRollback: the fault hits the deferred rollback of a
	// transfer already refused for insufficient funds. The refusal reaches
	// the caller; the deferred rollback's error is ignored, as in every
	// deferred-rollback helper, and the connection is closed, so nothing is
	// held. The runner wants the rollback's error to reach the caller.
	causeRefusedRollback = "a failed deferred rollback after a refused transfer: the refusal reached the caller, the runner wants the rollback's error"
)

// drivers are the two database/sql drivers the matrix runs through.
var drivers = []string{"pgx", "pq"}

// pgConfig returns a matrix configuration on a fresh migrated database,
// whose instrumented pools open through driver: "pgx" (pgx stdlib, from the
// DSN: every fault kind) or "pq" (lib/pq, through a Connector dialing
// through a faults.Wire: every kind but lock and stmt-timeout, whose
// locks the runner takes on a pool it opens from a DSN).
func pgConfig(t *testing.T, driver string) scenarios.Config {
	t.Helper()
	db := pgtest.New(t, pgtest.WithMigration("bank-v1", Migrate))
	cfg := scenarios.Config{Backend: scenarios.Postgres, DB: db.DB, Admin: db.Admin, AppName: db.AppName}
	switch driver {
	case "pgx":
		cfg.DSN = db.DSN
	case "pq":
		c, err := pq.NewConnector(db.DSN)
		if err != nil {
			t.Fatalf("lib/pq connector for %s: %v", db.DSN, err)
		}
		cfg.Wire = faults.NewWire()
		c.Dialer(cfg.Wire.Dialer())
		cfg.Connector = c
	default:
		t.Fatalf("driver %q: want pgx or pq", driver)
	}
	return cfg
}

// knownFalseAlarm returns why the case c, run through driver, is a known
// false alarm, or "".
func knownFalseAlarm(driver string, c scenarios.Case) string {
	return knownFalseAlarms[driver+"/"+c.Name()]
}

// TestMatrix puts every bank operation through every applicable fault at
// every step on real PostgreSQL, through pgx stdlib and through lib/pq.
func TestMatrix(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			cfg := pgConfig(t, driver)
			cfg.Only = func(c scenarios.Case) bool { return knownFalseAlarm(driver, c) == "" }
			scenarios.RunTests(t, cfg, catalog(theStore)...)
		})
	}
}

// TestKnownFalseAlarms runs each case of knownFalseAlarms on its own (a
// subtest per case, so that its replay command runs exactly that case), and
// each must still fail: one that passes has been fixed and leaves the list.
func TestKnownFalseAlarms(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			var names []string
			for name := range knownFalseAlarms {
				if c, ok := strings.CutPrefix(name, driver+"/"); ok {
					names = append(names, c)
				}
			}
			if len(names) == 0 {
				t.Skipf("no known false alarm through %s", driver)
			}
			slices.Sort(names)
			cfg := pgConfig(t, driver)
			cfg.Replay = func(c scenarios.Case) string { return replay("TestKnownFalseAlarms", driver, c) }
			for _, name := range names {
				t.Run(name, func(t *testing.T) {
					why := knownFalseAlarms[driver+"/"+name]
					opName, _, _ := strings.Cut(name, "/")
					op, ok := lookup(catalog(theStore), opName)
					if !ok {
						t.Fatalf("%s/%s is listed in knownFalseAlarms but the catalog has no operation %s: remove it", driver, name, opName)
					}
					cfg := cfg
					cfg.Only = func(c scenarios.Case) bool { return c.Name() == name }
					rep, err := scenarios.Run(t.Context(), cfg, op)
					if err != nil {
						t.Fatal(err)
					}
					if len(rep.Results) == 0 {
						t.Fatalf("%s/%s is listed in knownFalseAlarms but the matrix has no such case: remove it", driver, name)
					}
					if !rep.Failed() {
						t.Fatalf("%s/%s passes now: remove it from knownFalseAlarms (it was listed as: %s)", driver, name, why)
					}
					for _, f := range rep.Findings() {
						t.Logf("known false alarm (%s):\n%s", why, f.Error())
					}
				})
			}
		})
	}
}

// replay returns the go test command that runs exactly case c of test
// through driver.
func replay(test, driver string, c scenarios.Case) string {
	parts := append([]string{test, driver}, strings.Split(c.Name(), "/")...)
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return "go test ./examples/bank -run '" + strings.Join(parts, "/") + "'"
}
