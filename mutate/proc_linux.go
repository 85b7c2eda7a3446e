//go:build linux

package mutate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// isolate starts x in a session of its own, and makes cancelling it interrupt everything in
// that session, then kill what is left after grace. A test may start processes in their own
// process group (a Postgres server, say) which a group kill would miss; they stay in the
// session. The returned func stops the pending kill once the run is over.
func isolate(x *exec.Cmd, grace time.Duration) (stop func()) {
	x.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var timer *time.Timer
	x.Cancel = func() error {
		sid := x.Process.Pid
		signalSession(sid, syscall.SIGINT)
		timer = time.AfterFunc(grace, func() { signalSession(sid, syscall.SIGKILL) })
		return nil
	}
	return func() {
		if timer != nil {
			timer.Stop()
		}
	}
}

// reap ends whatever a finished run left in its session: SIGINT first (a Postgres server
// shuts down fast on it), SIGKILL for what is still there after grace.
func reap(x *exec.Cmd, grace time.Duration) {
	if x.Process == nil {
		return
	}
	sid := x.Process.Pid
	if signalSession(sid, syscall.SIGINT) == 0 {
		return
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(grace)
	for {
		select {
		case <-tick.C:
			if signalSession(sid, 0) == 0 {
				return
			}
		case <-deadline:
			signalSession(sid, syscall.SIGKILL)
			return
		}
	}
}

// signalSession sends sig to every process of session sid and returns how many there were.
func signalSession(sid int, sig syscall.Signal) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 4 {
			continue
		}
		if s, _ := strconv.Atoi(string(f[3])); s != sid {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		if pid > 0 && syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}
