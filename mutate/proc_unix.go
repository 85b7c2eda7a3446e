//go:build unix

package mutate

import (
	"os/exec"
	"syscall"
)

// killGroup makes cancelling x kill its whole process group: go test starts test binaries
// of its own, which must not outlive a timed-out mutant.
func killGroup(x *exec.Cmd) {
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGKILL) }
}
