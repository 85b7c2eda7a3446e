//go:build !unix

package mutate

import "os/exec"

// killGroup is a no-op where there are no process groups: cancelling kills the go command,
// and WaitDelay bounds the wait for its children.
func killGroup(*exec.Cmd) {}
