package mutate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRunReapsTimedOut: a mutant's tests that hang, having started a process in a process
// group of its own (as a test's Postgres server is), time out, and nothing they started
// outlives Run.
func TestRunReapsTimedOut(t *testing.T) {
	ms, err := sitesMutants()
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("119.%d", os.Getpid()) // a sleep length no other process uses
	script := `case "$GOFLAGS" in *-overlay=*) (set -m; sleep ` + marker + ` & wait) & sleep ` + marker + `;; esac`
	rep, err := Run(context.Background(), ms[:1], WithTest([]string{"sh", "-c", script}), WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Results[0].Status; got != TimedOut {
		t.Fatalf("status %s; want %s", got, TimedOut)
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, _ := os.ReadFile(c)
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s outlived the run: %q", filepath.Dir(c), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}
