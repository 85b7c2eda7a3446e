package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// A test binary killed from outside (go test -timeout, SIGKILL) cannot clean up. Each local
// cluster directory and each container therefore records its owner (pid and start time of
// the process that started it); the next start sweeps the leftovers of owners that are gone.

// ownerFile is the file in a local cluster directory naming its owner.
const ownerFile = "owner"

// selfOwner identifies this process: "pid starttime" (the start time tells a reused pid).
func selfOwner() string {
	return fmt.Sprintf("%d %s", os.Getpid(), procStart(os.Getpid()))
}

// procStart is the start time of pid (in clock ticks since boot), "" when it is not running.
func procStart(pid int) string {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return ""
	}
	return fields[19] // field 22 of stat: starttime
}

// ownerAlive reports whether the owner recorded as "pid starttime" still runs.
func ownerAlive(owner string) bool {
	f := strings.Fields(owner)
	if len(f) != 2 {
		return true // not ours to judge
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return true
	}
	return procStart(pid) == f[1]
}

// sweepLocal stops and removes the local clusters whose owner is gone. Directories without
// an owner file (another tool's, or one being created) are left alone.
func sweepLocal() (swept []string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil || ownerAlive(string(owner)) {
			continue
		}
		if pidfile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(pidfile), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 1 {
				// Only if that pid is still this cluster's postmaster.
				if cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline")); err == nil &&
					bytes.Contains(cmdline, []byte(dir)) {
					for _, child := range children(pid) {
						_ = syscall.Kill(child, syscall.SIGKILL)
					}
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if os.RemoveAll(dir) == nil {
			swept = append(swept, dir)
		}
	}
	return swept
}

// Container labels: every pgtest container, its owner process, and the host it ran on.
const (
	labelPgtest = "org.sessionsafe.pgtest"
	labelOwner  = "org.sessionsafe.pgtest.owner"
	labelHost   = "org.sessionsafe.pgtest.host"
)

// sweepDocker removes the pgtest containers started from this host whose owner is gone.
func sweepDocker(ctx context.Context, cli *testcontainers.DockerClient) (swept []string) {
	host, _ := os.Hostname()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", labelPgtest+"=1")})
	if err != nil {
		return nil
	}
	for _, c := range res.Items {
		owner, ok := c.Labels[labelOwner]
		if !ok || c.Labels[labelHost] != host || ownerAlive(owner) {
			continue
		}
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err == nil {
			swept = append(swept, c.ID[:12])
		}
	}
	return swept
}
