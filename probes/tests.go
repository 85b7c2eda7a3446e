package probes

import (
	"fmt"
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// RunTests runs both probes on each operation as subtests of t named
// "operation/pool-of-one" and "operation/concurrent" (on sqlmock the pool
// of one alone); a finding fails the
// subtest with Result.Err — the root causes first, the seed and the go test
// command that replays it (cfg.Seed is the seed: keep it fixed in the test,
// or print the one you draw).
func RunTests(t *testing.T, cfg Config, ops ...scenarios.Operation) {
	t.Helper()
	for _, op := range ops {
		t.Run(op.Name, func(t *testing.T) {
			for _, probe := range []struct {
				name string
				run  func(Config) Result
			}{
				{ProbePoolOfOne, func(c Config) Result { return PoolOfOne(t.Context(), c, op) }},
				{ProbeConcurrent, func(c Config) Result { return Concurrent(t.Context(), c, op) }},
			} {
				if cfg.Backend == faults.Mock && probe.name == ProbeConcurrent {
					continue // Postgres only
				}
				t.Run(probe.name, func(t *testing.T) {
					c := cfg
					if c.Replay == nil {
						name := t.Name()
						c.Replay = func(_, _ string, seed int64) string {
							return fmt.Sprintf("%s   # seed %d", scenarios.GoTestCommand(name), seed)
						}
					}
					res := probe.run(c)
					t.Log(res.Summary())
					if err := res.Err(); err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
}
