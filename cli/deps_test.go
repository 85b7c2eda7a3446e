package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGeneric keeps the command line a library for anyone's catalog: nothing it depends
// on, directly or not, may be one of the catalogs it is given (the thread handlers and
// their suite, which holds their planted bugs, the bank example).
func TestGeneric(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range []string{"sessionsafe/handlers", "sessionsafe/threadsuite", "sessionsafe/examples/"} {
			if strings.Contains(dep, f) {
				t.Errorf("cli depends on %s; want nothing of a catalog (%s): a catalog comes in through Main", dep, f)
			}
		}
	}
}
