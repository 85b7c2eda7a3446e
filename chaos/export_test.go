package chaos

import (
	"context"
	"io"
	"time"
)

// SetConnShare makes the runs of c share n connections of the server among their workers,
// whatever the server has free: a small share queues most workers for a connection.
func SetConnShare(c *Config, n int) { c.connShare = n }

// ShrinkRunning is Shrink with run standing in for Run: a test's violations, flaky or not.
func ShrinkRunning(ctx context.Context, cfg Config, res *Result, newTarget NewTarget, budget time.Duration, maxAttempts int, log io.Writer,
	run func(context.Context, Config, Target) (*Result, error)) (Shrunk, error) {
	return shrink(ctx, cfg, res, newTarget, budget, maxAttempts, log, run)
}
