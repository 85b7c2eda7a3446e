package scenarios

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoThreadDependencies keeps the runner generic: nothing scenarios
// depends on, directly or not, may be the thread service (handlers) or its
// suite (threadsuite, which holds the handlers' planted bugs).
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
	cmd := exec.Command("go", "list", "-deps", "./scenarios")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./scenarios: %v", err)
	}
	forbidden := []string{"/handlers", "/threadsuite"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.Contains(dep, f) {
				t.Errorf("scenarios depends on %s; want no package whose path contains %q (the runner must stay generic)", dep, f)
			}
		}
	}
}
