package scenarios

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/internal/mutant"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// probeSeed returns the seed of this run: SESSIONSAFE_PROBE_SEED when set
// (a replay), else one from the clock. It is printed either way.
func probeSeed(tb testing.TB) int64 {
	tb.Helper()
	if s := os.Getenv("SESSIONSAFE_PROBE_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatalf("SESSIONSAFE_PROBE_SEED=%q: %v", s, err)
		}
		return seed
	}
	return time.Now().UnixNano()
}

// probeDB returns a fresh migrated database for one probe.
func probeDB(tb testing.TB) ProbeEnv {
	tb.Helper()
	db := pgtest.New(tb, pgtest.WithMigration("handlers", handlers.Migrate))
	return ProbeEnv{DSN: db.DSN, AppName: db.AppName, Admin: db.Admin}
}

// TestProbes runs every concurrency probe on real Postgres against the
// correct handlers: each must come back clean. The seed is printed; a failure
// prints the command that replays it.
func TestProbes(t *testing.T) {
	seed := probeSeed(t)
	t.Logf("probe seed %d (replay with SESSIONSAFE_PROBE_SEED=%d)", seed, seed)
	tests := []struct {
		name  string
		probe string
		cfg   ProbeConfig
	}{
		{name: "pool/size-1", probe: "pool", cfg: ProbeConfig{PoolSize: 1}},
		{name: "pool/size-2", probe: "pool", cfg: ProbeConfig{PoolSize: 2}},
		{name: "mixed/size-1", probe: "mixed", cfg: ProbeConfig{Workers: 6, Ops: 25, PoolSize: 1}},
		{name: "mixed/size-2", probe: "mixed", cfg: ProbeConfig{Workers: 6, Ops: 25, PoolSize: 2}},
		{name: "lost-update", probe: "lost-update", cfg: ProbeConfig{Workers: 12, Ops: 3}},
		{name: "send-order", probe: "send-order", cfg: ProbeConfig{Workers: 8, Ops: 5}},
		{name: "delete-vs-send", probe: "delete-vs-send", cfg: ProbeConfig{Workers: 6, Ops: 8}},
		{name: "finished-tx", probe: "finished-tx", cfg: ProbeConfig{Workers: 6, Ops: 10}},
		{name: "cancellation", probe: "cancellation"},
		{name: "external-call", probe: "external-call"},
		{name: "notify", probe: "notify"},
		{name: "error-path", probe: "error-path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := LookupProbe(tt.probe)
			if !ok {
				t.Fatalf("no probe %q", tt.probe)
			}
			env := probeDB(t)
			cfg := tt.cfg
			cfg.Seed = seed
			cfg.Replay = func(string, int64) string {
				return "SESSIONSAFE_PROBE_SEED=" + strconv.FormatInt(seed, 10) + " go test -race ./scenarios -run 'TestProbes/" + tt.name + "$'"
			}
			res := p.Run(t.Context(), env, cfg)
			t.Log(res.Summary())
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestProbesCatchPlantedBugs shows each probe check failing: with a session
// bug planted in the handlers, the probe that targets it reports a finding of
// the named check.
func TestProbesCatchPlantedBugs(t *testing.T) {
	seed := probeSeed(t)
	t.Logf("probe seed %d", seed)
	tests := []struct {
		name  string
		probe string
		bug   mutant.Bug
		check string
		cfg   ProbeConfig
	}{
		{name: "pool/QueryOnPoolInsideUnit", probe: "pool", bug: mutant.QueryOnPoolInsideUnit, check: "deadline", cfg: ProbeConfig{PoolSize: 1, OpTimeout: time.Second}},
		{name: "lost-update/MetadataReadModifyWrite", probe: "lost-update", bug: mutant.MetadataReadModifyWrite, check: "lost-update", cfg: ProbeConfig{Workers: 12, Ops: 3}},
		{name: "send-order/SendRetryWithoutClientID", probe: "send-order", bug: mutant.SendRetryWithoutClientID, check: "idempotency", cfg: ProbeConfig{Workers: 4, Ops: 2}},
		{name: "cancellation/ContextNotPassed", probe: "cancellation", bug: mutant.ContextNotPassed, check: "cancellation"},
		{name: "external-call/TxHeldAcrossTitleGenerator", probe: "external-call", bug: mutant.TxHeldAcrossTitleGenerator, check: "long-transaction"},
		{name: "notify/GoroutineWithoutRequestContext", probe: "notify", bug: mutant.GoroutineWithoutRequestContext, check: "goroutines"},
		{name: "error-path/RollbackMissingOnError", probe: "error-path", bug: mutant.RollbackMissingOnError, check: "pool", cfg: ProbeConfig{OpTimeout: time.Second}},
		{name: "error-path/ConnNeverClosed", probe: "error-path", bug: mutant.ConnNeverClosed, check: "pool", cfg: ProbeConfig{OpTimeout: time.Second}},
		{name: "mixed/SendRetryWithoutClientID", probe: "mixed", bug: mutant.SendRetryWithoutClientID, check: "acknowledged", cfg: ProbeConfig{Workers: 2, Ops: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := LookupProbe(tt.probe)
			if !ok {
				t.Fatalf("no probe %q", tt.probe)
			}
			cfg := tt.cfg
			cfg.Seed = seed
			cfg.Bugs = []mutant.Bug{tt.bug}
			res := p.Run(t.Context(), probeDB(t), cfg)
			t.Log(res.Summary())
			for _, f := range res.Findings {
				if f.Check == tt.check {
					t.Logf("caught: %s", firstLineOf(f.Message))
					return
				}
			}
			t.Fatalf("probe %s with %s planted: no %q finding; got %v", tt.probe, tt.bug, tt.check, res.Err())
		})
	}
}
