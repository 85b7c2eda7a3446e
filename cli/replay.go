package cli

import (
	"context"
	"fmt"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// runReplay reruns one matrix case (-case) or one chaos seed (-seed) exactly.
func runReplay(ctx context.Context, o *options, e *env) int {
	switch {
	case o.caseName != "" && o.seedSet:
		fmt.Fprintf(e.stderr, "%s replay: -case and -seed: give one of them\n", e.prog)
		return exitUsage
	case o.caseName != "":
		if !o.set["backend"] {
			o.backend = "both"
		}
		name := o.caseName
		o.verbose = true
		return matrixCommand(ctx, "replay", o, e, func(c scenarios.Case) bool { return c.Name() == name })
	case o.seedSet:
		return chaosCommand(ctx, "replay", o, e)
	}
	fmt.Fprintf(e.stderr, "%s replay: want -case NAME (a matrix case) or -seed N (a chaos run)\n", e.prog)
	return exitUsage
}
