package scenarios

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoThreadDependencies keeps the runner and the probes generic: nothing
// scenarios or probes depends on, directly or not, may be the thread
// service (handlers), the bank example or the thread suite (threadsuite,
// which holds the handlers' planted bugs).
func TestNoThreadDependencies(t *testing.T) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		t.Fatalf("go env GOMOD: %q; want the module's go.mod", mod)
	}
	root := filepath.Dir(mod)
	for _, pkg := range []string{"./scenarios", "./probes"} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		forbidden := []string{"/handlers", "/examples/", "/threadsuite"}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.Contains(dep, f) {
					t.Errorf("%s depends on %s; want no package whose path contains %q (it must stay generic)", pkg, dep, f)
				}
			}
		}
	}
}
