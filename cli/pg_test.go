package cli

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// needPostgres skips (or, when the environment demands Postgres, fails) a test whose
// in-process run could not get a Postgres.
func needPostgres(t testing.TB, code int, stderr string) {
	t.Helper()
	if code == exitUsage && strings.Contains(stderr, "no postgres available") {
		if pgtest.Required() {
			t.Fatalf("no Postgres although the environment demands one: %s", stderr)
		}
		t.Skipf("no Postgres: %s", stderr)
	}
}

// TestCleanChaosExitsZero: with no planted bug, chaos finds nothing — with driver faults
// alone, and with server chaos (terminated backends, pauses, a restart) on top.
func TestCleanChaosExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postgres")
	}
	tests := []struct {
		name string
		args []string
	}{
		{"faults", []string{"-seed", "5", "-workers", "4", "-ops", "300", "-fault-rate", "0.05"}},
		// Shorter than any period: the run goes on until each kind of server chaos has acted.
		{"server-chaos", []string{"-seed", "22", "-workers", "4", "-duration", "1s", "-fault-rate", "0.03",
			"-terminate-every", "700ms", "-pause-every", "1500ms", "-restart-every", "2500ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "server-chaos" && os.Getenv("SESSIONSAFE_PG_PROVIDER") == "dsn" {
				t.Skip("a server given by DSN cannot be restarted or paused")
			}
			ctx, cancel := context.WithDeadline(t.Context(), testkit.Within(t, 10*time.Minute))
			t.Cleanup(cancel)
			dir := t.TempDir()
			args := append([]string{"chaos", "-backend", "postgres", "-progress", "lines", "-report-dir", dir}, tt.args...)
			code, stdout, stderr := runCLI(t, ctx, os.Getenv, args...)
			needPostgres(t, code, stderr)
			if code != exitOK {
				t.Fatalf("clean chaos: exit %d; want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			for _, want := range []string{"PASS: no violation", "report: " + filepath.Join(dir, "report.html")} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			if tt.name == "server-chaos" && (strings.Contains(stdout, " 0 backends killed") || strings.Contains(stdout, " 0 restarts") || strings.Contains(stdout, " 0 pauses")) {
				t.Errorf("server chaos did not act:\n%s", stdout)
			}
		})
	}
}

// TestInterruptLeavesNothingBehind builds the binary, starts a long chaos run on a local
// cluster and on a container, sends SIGINT once it is running, and checks: exit code 2, a
// partial report marked interrupted, nothing left in its TMPDIR, and no cluster process or
// container of it left.
func TestInterruptLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts Postgres")
	}
	work := t.TempDir()
	bin := filepath.Join(work, "sessionsafe")
	build := exec.Command("go", "build", "-o", bin, "../cmd/sessionsafe")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	serverPortRE := regexp.MustCompile(`pgtest: postgres ready" provider=docker .*server="postgres://[^"]*@127\.0\.0\.1:([0-9]+)/`)
	tests := []struct {
		provider string
		ready    func(t *testing.T) string // "" when the provider can run here, else why not
		env      []string
		// alive counts what of the run still exists: cluster processes, the container.
		alive func(t *testing.T, tmp, stderr string) int
	}{
		{
			provider: "local",
			ready: func(t *testing.T) string {
				if _, err := exec.LookPath("pg_config"); err == nil {
					return ""
				}
				if _, err := os.Stat("/usr/lib/postgresql"); err == nil {
					return ""
				}
				return "no local PostgreSQL binaries"
			},
			alive: func(t *testing.T, tmp, _ string) int { return clusterProcesses(t, tmp) },
		},
		{
			provider: "docker",
			ready: func(t *testing.T) string {
				if exec.Command("docker", "info").Run() != nil {
					return "Docker not reachable"
				}
				if exec.Command("docker", "image", "inspect", "sessionsafe/postgres:local").Run() != nil {
					return "no image sessionsafe/postgres:local (make pg-image builds it; none can be pulled)"
				}
				return ""
			},
			env: []string{"SESSIONSAFE_PG_IMAGE=sessionsafe/postgres:local", "TESTCONTAINERS_RYUK_DISABLED=true"},
			alive: func(t *testing.T, _, log string) int {
				// The container is the one publishing the port pgtest logged as ready.
				m := serverPortRE.FindStringSubmatch(log)
				if m == nil {
					t.Fatalf("no server address in the run's log:\n%s", log)
				}
				out, err := exec.Command("docker", "ps", "-a", "--format", "{{.ID}} {{.Ports}}").Output()
				if err != nil {
					t.Fatalf("docker ps: %v", err)
				}
				n := 0
				for _, line := range strings.Split(string(out), "\n") {
					if strings.Contains(line, ":"+m[1]+"->") {
						n++
					}
				}
				return n
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.provider, func(t *testing.T) {
			if why := tt.ready(t); why != "" {
				t.Skipf("provider %s: %s", tt.provider, why)
			}
			// The run's own TMPDIR, traversable by the postgres user the cluster runs as.
			tmp, err := os.MkdirTemp("", "sessionsafe-sigint-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(tmp) })
			if err := os.Chmod(tmp, 0o1777); err != nil {
				t.Fatal(err)
			}
			reports := filepath.Join(t.TempDir(), "reports")
			ctx, cancel := context.WithDeadline(t.Context(), testkit.Within(t, 10*time.Minute))
			t.Cleanup(cancel)
			cmd := exec.CommandContext(ctx, bin, "chaos", "-backend", "postgres", "-provider", tt.provider, "-duration", "5m",
				"-workers", "4", "-fault-rate", "0.05", "-v", "-progress", "off", "-report-dir", reports)
			cmd.Env = append(append(os.Environ(), "TMPDIR="+tmp), tt.env...)
			// Both streams: testcontainers logs the container it creates on stdout.
			output, pw := io.Pipe()
			cmd.Stdout, cmd.Stderr = pw, pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			// -v logs every fault: the first one means the workers are running.
			running := make(chan struct{})
			drained := make(chan struct{})
			var mu sync.Mutex
			var logged strings.Builder
			go func() {
				defer close(drained)
				sc := bufio.NewScanner(output)
				once := false
				for sc.Scan() {
					line := sc.Text()
					mu.Lock()
					if logged.Len() < 16000 {
						logged.WriteString(line + "\n")
					}
					mu.Unlock()
					if !once && strings.HasPrefix(line, "worker ") {
						once = true
						close(running)
					}
				}
			}()
			log := func() string { mu.Lock(); defer mu.Unlock(); return logged.String() }
			select {
			case <-running:
			case <-ctx.Done():
				t.Fatalf("the chaos run never started its workers:\n%s", log())
			}
			if n := tt.alive(t, tmp, log()); n == 0 {
				t.Fatalf("nothing of the %s server found while it runs: the test would prove nothing", tt.provider)
			}
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			pw.Close()
			<-drained
			if code := cmd.ProcessState.ExitCode(); code != exitUsage {
				t.Errorf("after SIGINT: exit %d (%v); want %d\nstderr:\n%s", code, err, exitUsage, log())
			}
			data, err := os.ReadFile(filepath.Join(reports, "report.json"))
			if err != nil {
				t.Fatalf("no partial report: %v", err)
			}
			var rep struct{ Interrupted bool }
			if err := json.Unmarshal(data, &rep); err != nil || !rep.Interrupted {
				t.Errorf("report.json: interrupted=%v (%v); want true", rep.Interrupted, err)
			}
			left, _ := os.ReadDir(tmp)
			for _, e := range left {
				t.Errorf("left behind in TMPDIR: %s", e.Name())
			}
			if n := tt.alive(t, tmp, log()); n > 0 {
				t.Errorf("%d process(es) or container(s) of the %s server still exist after the CLI exited", n, tt.provider)
			}
		})
	}
}

// clusterProcesses counts the processes whose command line or working files name dir.
func clusterProcesses(t testing.TB, dir string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), dir) {
			n++
		}
	}
	return n
}

// TestDockerSetupOutput runs the binary against an image Docker does not have: the error
// names the image and make pg-image, and testcontainers' Docker banner shows only with -v.
func TestDockerSetupOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("Docker not reachable")
	}
	bin := filepath.Join(t.TempDir(), "sessionsafe")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/sessionsafe").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tests := []struct {
		name       string
		verbose    bool
		wantBanner bool
	}{
		{"quiet", false, false},
		{"verbose", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"matrix", "-backend", "postgres", "-provider", "docker", "-run", "GetThread/step-0"}
			if tt.verbose {
				args = append(args, "-v")
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), pgtest.EnvImage+"=sessionsafe/no-such-image:missing", "TESTCONTAINERS_RYUK_DISABLED=true")
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != exitUsage {
				t.Fatalf("exit %d (%v); want %d\n%s", code, err, exitUsage, out)
			}
			for _, want := range []string{"sessionsafe/no-such-image:missing", "make pg-image"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if got := strings.Contains(string(out), "Connected to docker"); got != tt.wantBanner {
				t.Errorf("testcontainers banner shown: %v; want %v\n%s", got, tt.wantBanner, out)
			}
		})
	}
}

// TestBrokenRecordingNeverPasses: an operation that fails with no fault (here, one that
// always does) cannot be put through the matrix; its clean case runs and reports the
// failure — also when -run selects only its other cases — and the run never says PASS.
func TestBrokenRecordingNeverPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postgres")
	}
	broken := bareCatalog()
	broken.Operations[0].Run = func(ctx context.Context, db *sql.DB, _ scenarios.Fixture) error {
		_, err := db.ExecContext(ctx, "SELECT no_such_column FROM pg_class")
		return err
	}
	tests := []struct {
		name string
		args []string
	}{
		{"all-cases", nil},
		{"run-selects-a-step", []string{"-run", "Ping/step-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"matrix", "-catalog", "bare", "-backend", "postgres"}, tt.args...)
			code := program{name: "check", catalogs: []Catalog{broken}}.run(t.Context(), args, &out, &errOut, os.Getenv)
			needPostgres(t, code, errOut.String())
			if code != exitViolations || strings.Contains(out.String(), "PASS") {
				t.Fatalf("check %s: exit %d; want %d and no PASS\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, exitViolations, out.String(), errOut.String())
			}
			if !strings.Contains(out.String()+errOut.String(), "no_such_column") {
				t.Errorf("output does not name the clean run's failure (no_such_column):\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
			}
		})
	}
}
