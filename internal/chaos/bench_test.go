package chaos_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sessionsafe/sessionsafe/internal/chaos"
)

// BenchmarkChaos measures chaos throughput (operations per second over all workers) with
// faults and every check on ("checked") next to the same workload with no fault and no check
// ("baseline"), in the same process on the same server; "checks-only" has every check on and
// no fault, to tell the cost of the checks from the cost of the faults (reconnects after a
// broken connection, retries, latency). One b.N is one operation.
func BenchmarkChaos(b *testing.B) {
	for _, workers := range []int{8, 32} {
		for _, mode := range []string{"baseline", "checks-only", "checked"} {
			b.Run(fmt.Sprintf("workers=%d/%s", workers, mode), func(b *testing.B) {
				tg := target(b)
				cfg := chaos.Config{Seed: 1, Workers: workers, Ops: max(b.N, workers), FaultRate: 0.03, NoGoroutineCheck: true}
				switch mode {
				case "baseline":
					cfg.NoChecks = true
				case "checks-only":
					cfg.FaultRate = 0
				}
				b.ResetTimer()
				res, err := chaos.Run(context.Background(), cfg, tg)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Violations) > 0 {
					b.Fatalf("violation in a clean run: %s", res.Violations[0])
				}
				b.ReportMetric(res.OpsPerSec(), "ops/s")
			})
		}
	}
}
