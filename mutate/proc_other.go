//go:build !linux

package mutate

import (
	"os/exec"
	"time"
)

// isolate leaves x as it is where sessions cannot be listed: cancelling kills the go
// command, and processes its tests started may outlive it.
func isolate(*exec.Cmd, time.Duration) (stop func()) { return func() {} }

// reap has nothing to end where isolate did nothing.
func reap(*exec.Cmd, time.Duration) {}
