package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestSweepLocal plants the leftovers of a killed test binary (a running cluster whose
// owner is gone) next to a live owner's and an unowned directory; only the first is swept.
func TestSweepLocal(t *testing.T) {
	if _, err := findBindir(); err != nil {
		if Required() {
			t.Fatalf("local binaries required here: %v", err)
		}
		t.Skipf("no local binaries: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	be, err := startLocal(ctx, defaults())
	if err != nil {
		t.Fatalf("start a local cluster: %v", err)
	}
	orphan := be.(*localServer)
	t.Cleanup(func() { _ = orphan.close() })
	pm := orphan.cmd.Process.Pid
	// pid 999999999 is above any pid_max: that owner is gone.
	if err := os.WriteFile(filepath.Join(orphan.dir, ownerFile), []byte("999999999 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := func(owner string) string {
		dir, err := os.MkdirTemp("", "pgtest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	live, unowned := mk(selfOwner()), mk("")

	swept := sweepLocal()
	if !slices.Contains(swept, orphan.dir) {
		t.Errorf("sweepLocal() = %v; want it to contain the orphan %s", swept, orphan.dir)
	}
	for _, dir := range []string{live, unowned} {
		if slices.Contains(swept, dir) {
			t.Errorf("sweepLocal() swept %s; want it left alone", dir)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s: %v; want it still there", dir, err)
		}
	}
	// The orphan's postmaster was killed: its exit is reaped by our own Wait goroutine.
	select {
	case <-orphan.exited:
	case <-ctx.Done():
		t.Errorf("postmaster %d still running after the sweep", pm)
	}
	if err := syscall.Kill(pm, 0); err == nil {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pm))); err == nil {
			t.Errorf("postmaster %d still exists after the sweep", pm)
		}
	}
}

// TestSweepDocker plants a container whose owner is gone; the next sweep removes it.
// The owner is a child process that lives until the container is up — other test
// binaries starting Postgres meanwhile sweep too, and must not take the orphan while
// it starts — and is then killed. Whichever sweep comes first after that removes it.
func TestSweepDocker(t *testing.T) {
	cfg := defaults()
	cfg.image = "sessionsafe/postgres:local"
	if img := os.Getenv(EnvImage); img != "" {
		cfg.image = img
	}
	owner := exec.Command("sleep", "3600")
	if err := owner.Start(); err != nil {
		t.Fatalf("start the orphan's owner: %v", err)
	}
	cfg.owner = fmt.Sprintf("%d %s", owner.Process.Pid, procStart(owner.Process.Pid))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	be, err := startDocker(ctx, cfg, false)
	_ = owner.Process.Kill()
	_ = owner.Wait()
	if err != nil {
		if Required() {
			t.Fatalf("docker provider required here: %v", err)
		}
		t.Skipf("docker provider cannot serve here: %v", err)
	}
	orphan := be.(*dockerServer)
	t.Cleanup(func() { _ = orphan.close() })
	id := orphan.ctr.GetContainerID()
	swept := sweepDocker(ctx, orphan.cli)
	if _, err := orphan.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil {
		t.Errorf("container %s still exists after the sweep (sweepDocker() = %v)", id[:12], swept)
	}
}
