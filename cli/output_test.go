package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/report"
)

// TestFinishSaysInterrupted: the last line of an interrupted run says so, violations or
// not, and its exit code (2) tells a script the run did not complete; every report file
// says so too.
func TestFinishSaysInterrupted(t *testing.T) {
	tests := []struct {
		name        string
		interrupted bool
		violations  int
		want        int
		last        string
	}{
		{"clean", false, 0, exitOK, "PASS: no violation"},
		{"violations", false, 1, exitViolations, "FAIL: 1 violation(s)"},
		{"interrupted", true, 0, exitUsage, "INTERRUPTED: partial report written; no violation so far"},
		{"interrupted-with-violations", true, 1, exitUsage, "INTERRUPTED: partial report written; 1 violation(s) found before the interrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var out, errOut bytes.Buffer
			e := &env{stdout: &out, stderr: &errOut, now: func() time.Time { return time.Unix(10, 0) }}
			o := &options{reportDir: dir}
			rep := report.New("chaos", nil, 1, time.Unix(0, 0))
			rep.Interrupted = tt.interrupted
			rep.Chaos = []report.ChaosRun{{Backend: "sqlmock", Operations: 10, Interrupted: tt.interrupted}}
			for range tt.violations {
				rep.Violations = append(rep.Violations, report.Violation{ID: "V1", Source: "chaos", Backend: "sqlmock", Invariant: "pool", Message: "held"})
			}
			if code := finish(e, o, rep); code != tt.want {
				t.Errorf("exit %d; want %d\n%s", code, tt.want, out.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if got := lines[len(lines)-1]; got != tt.last {
				t.Errorf("last line: got %q; want %q", got, tt.last)
			}
			var js struct{ Summary struct{ Interrupted bool } }
			b, err := os.ReadFile(filepath.Join(dir, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &js); err != nil || js.Summary.Interrupted != tt.interrupted {
				t.Errorf("report.json summary interrupted: %v (%v); want %v", js.Summary.Interrupted, err, tt.interrupted)
			}
			var ju struct {
				Errors int `xml:"errors,attr"`
			}
			b, err = os.ReadFile(filepath.Join(dir, "junit.xml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := xml.Unmarshal(b, &ju); err != nil || (ju.Errors > 0) != tt.interrupted {
				t.Errorf("junit.xml errors=%d (%v); want errors > 0 exactly when interrupted", ju.Errors, err)
			}
			h, err := os.ReadFile(filepath.Join(dir, "report.html"))
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(h, []byte("interrupted")); got != tt.interrupted {
				t.Errorf("report.html mentions interrupted: %v; want %v", got, tt.interrupted)
			}
		})
	}
}

func TestSummaryCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.json")
	rep := report.New("chaos", nil, 1, time.Unix(0, 0))
	rep.Interrupted = true
	rep.Chaos = []report.ChaosRun{{Backend: "sqlmock", Operations: 69001, Faults: 51675}}
	rep.Finish(time.Unix(20, 0))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.WriteJSON(f, rep); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want int
		out  string
	}{
		{"one-report", []string{"summary", path}, exitOK, "chaos: 69001 operations, 51675 faults, 0 violations, 20.0s, interrupted\n"},
		{"no-file", []string{"summary"}, exitUsage, ""},
		{"missing-file", []string{"summary", filepath.Join(dir, "nope.json")}, exitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, context.Background(), noEnv, tt.args...)
			if code != tt.want || stdout != tt.out {
				t.Errorf("sessionsafe %s: exit %d, stdout %q; want %d, %q (stderr %s)", strings.Join(tt.args, " "), code, stdout, tt.want, tt.out, stderr)
			}
		})
	}
}

// TestMakeChaosStopsAfterAnIncompleteMatrix runs the Makefile's _chaos recipe with a stand-in
// binary: a matrix that exits 2 (interrupted, or could not run) or 130 (killed by Ctrl-C)
// does not start the chaos run, and no report of an earlier run is summarised.
func TestMakeChaosStopsAfterAnIncompleteMatrix(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	makefile, err := filepath.Abs(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		matrixExit string
		wantChaos  bool
	}{
		{"0", true},
		{"1", true},
		{"2", false},
		{"130", false},
	}
	for _, tt := range tests {
		t.Run("matrix-exit-"+tt.matrixExit, func(t *testing.T) {
			dir := t.TempDir()
			// A stale chaos report of an earlier run: never summarised as this run's.
			if err := os.MkdirAll(filepath.Join(dir, "reports", "chaos"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "reports", "chaos", "report.json"), []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
			// The stand-in go build writes the stand-in bin/sessionsafe.
			fakeGo := filepath.Join(dir, "go")
			script := `#!/bin/sh
mkdir -p bin
cat > bin/sessionsafe <<'EOF'
#!/bin/sh
echo "$1" >> calls
case $1 in
matrix) mkdir -p reports/matrix; echo '{}' > reports/matrix/report.json; exit ` + tt.matrixExit + `;;
summary) echo "summary of $2";;
esac
EOF
chmod +x bin/sessionsafe
`
			if err := os.WriteFile(fakeGo, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("make", "--no-print-directory", "-f", makefile, "_chaos", "GO="+fakeGo)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "SESSIONSAFE_PG_DSN=postgres://u@127.0.0.1:1/db")
			out, _ := cmd.CombinedOutput()
			calls, err := os.ReadFile(filepath.Join(dir, "calls"))
			if err != nil {
				t.Fatalf("the recipe never ran the binary: %v\n%s", err, out)
			}
			if got := strings.Contains(string(calls), "chaos"); got != tt.wantChaos {
				t.Errorf("matrix exit %s: chaos run started: %v; want %v\n%s", tt.matrixExit, got, tt.wantChaos, out)
			}
			if !tt.wantChaos && strings.Contains(string(out), "summary of reports/chaos/report.json") {
				t.Errorf("matrix exit %s: the stale chaos report was summarised:\n%s", tt.matrixExit, out)
			}
			if !strings.Contains(string(out), "summary of reports/matrix/report.json") {
				t.Errorf("the summary does not use sessionsafe summary:\n%s", out)
			}
		})
	}
}

// TestMakeTestSaysWhatItDoes: make test says what it runs, on what, and that results come
// only when each package ends — before go test's long silence, not after.
func TestMakeTestSaysWhatItDoes(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	makefile, err := filepath.Abs(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The stand-in go lists two packages, and marks where go test would start.
	fakeGo := filepath.Join(dir, "go")
	script := "#!/bin/sh\ncase $1 in\nlist) echo a; echo b;;\ntest) echo GO-TEST-STARTS;;\nesac\n"
	if err := os.WriteFile(fakeGo, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "--no-print-directory", "-f", makefile, "test", "GO="+fakeGo)
	cmd.Dir = dir
	// An image other than the Makefile's: the recipe leaves Docker alone.
	cmd.Env = append(os.Environ(), "SESSIONSAFE_PG_IMAGE=example/postgres:other")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make test with a stand-in go: %v\n%s", err, out)
	}
	text := string(out)
	start := strings.Index(text, "GO-TEST-STARTS")
	for _, want := range []string{"make test: go test -race: 2 packages", "make test: a package's result prints only when the whole package ends"} {
		if i := strings.Index(text, want); i < 0 || i > start {
			t.Errorf("make test does not say %q before go test starts:\n%s", want, text)
		}
	}
}
