package threadsuite

import (
	"context"
	"fmt"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// Example runs the sqlmock matrix of one catalog operation: every fault at
// every step, each case checked, expectations generated from the golden
// trace.
func Example() {
	op, _ := Lookup(Catalog(), OpUpdateThread)
	rep, err := scenarios.Run(context.Background(), scenarios.Config{Backend: scenarios.Sqlmock, Golden: GoldenFS()}, op)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d cases, %d findings\n", len(rep.Results), len(rep.Findings()))
	fmt.Println(rep.Results[0].Case.Name())
	fmt.Println(rep.Results[len(rep.Results)-1].Case.Name())
	// Output:
	// 39 cases, 0 findings
	// UpdateThread/step-0-clean/clean
	// UpdateThread/step-1-connect/latency=20ms
}
