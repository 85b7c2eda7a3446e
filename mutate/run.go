package mutate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/tools/go/packages"
)

// Status is what a mutant's test run said of it.
type Status string

// The statuses of a mutant.
const (
	// Killed: a test failed with the mutant in place.
	Killed Status = "killed"
	// Survived: every test passed with the mutant in place: a gap in the tests.
	Survived Status = "survived"
	// Equivalent: every test passed, and an EquivalentDirective at the site says why no
	// test can catch the mutant (Mutant.Equivalent).
	Equivalent Status = "equivalent"
	// TimedOut: the tests ran past the per-mutant timeout (often a hang the mutant caused).
	TimedOut Status = "timed-out"
	// NotCovered: no test could judge the mutant: no test reaches its package, or the mutated
	// code does not build (Reason says which).
	NotCovered Status = "not-covered"
)

// Result is one mutant's outcome.
type Result struct {
	Mutant
	Status Status `json:"status"`
	// KilledBy names the failing test of a killed mutant, its deepest failing subtest (e.g.
	// TestMatrix/sqlmock/Transfer/step-11-commit/error) when it has subtests; a
	// failure outside any test (TestMain, a panic) is "(package PKG)".
	KilledBy string `json:"killed_by,omitempty"`
	// Failure is the first line of the failure that killed the mutant.
	Failure string `json:"failure,omitempty"`
	// Failed names every test and subtest that failed with the mutant in place, in the order
	// go test reported them.
	Failed []string `json:"failed,omitempty"`
	// Reason says why a mutant is not covered.
	Reason string `json:"reason,omitempty"`
	// Command is the test command run for the mutant.
	Command []string `json:"command,omitempty"`
	// Duration is how long its test run took.
	Duration time.Duration `json:"duration_ns"`
}

// Run runs the tests once without any mutant (the clean run, which must pass), then once per
// mutant with that mutant in place through go's -overlay, and reports the outcome of each. On
// a cancelled context it returns the partial report and the context's error.
//
// Run reads WithDir, WithTest, WithTestFor, WithParallel, WithTimeout, WithShard and
// WithProgress.
func Run(ctx context.Context, mutants []Mutant, opts ...Option) (Report, error) {
	c, err := newConfig("run", []string{"WithDir", "WithTest", "WithTestFor", "WithParallel", "WithTimeout", "WithShard", "WithProgress"}, opts)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Schema: SchemaV1, Started: time.Now(), Parallel: c.parallel}
	if c.shardN > 1 {
		rep.Shard = fmt.Sprintf("%d/%d", c.shardI, c.shardN)
	}
	var ms []Mutant
	for _, m := range mutants {
		if m.path == "" {
			return rep, fmt.Errorf("mutate: run: mutant %s did not come from Find", m.ID)
		}
		if ShardOf(m.ID, c.shardN) == c.shardI {
			ms = append(ms, m)
		}
	}
	tmp, err := os.MkdirTemp("", "sessionsafe-mutate-")
	if err != nil {
		return rep, fmt.Errorf("mutate: run: %w", err)
	}
	defer os.RemoveAll(tmp)
	// Readable by all: a test may run a server as another user (pgtest runs Postgres as an
	// unprivileged user when run as root) with its files under the run's TMPDIR.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return rep, fmt.Errorf("mutate: run: %w", err)
	}

	// The test command of each mutant, and the clean run of each distinct command.
	cmds := make([][]string, len(ms))
	reasons := make([]string, len(ms))
	if c.test != nil {
		for i := range ms {
			cmds[i] = c.test
		}
	} else {
		targets, err := testTargets(ctx, c.dir, ms)
		if err != nil {
			return rep, err
		}
		for i, m := range ms {
			t := targets[m.Package]
			if len(t) == 0 {
				reasons[i] = "no test in module " + filepath.Base(m.modDir) + " reaches package " + m.Package
				continue
			}
			cmds[i] = append([]string{"go", "test", "-count=1", "-vet=off"}, t...)
		}
	}
	if c.testFor != nil {
		for i, m := range ms {
			if cmd := c.testFor(m); len(cmd) > 0 {
				cmds[i], reasons[i] = append([]string(nil), cmd...), ""
			}
		}
	}
	timeouts := map[string]time.Duration{}
	for _, cmd := range cmds {
		key := strings.Join(cmd, "\x00")
		if cmd == nil || timeouts[key] != 0 {
			continue
		}
		start := time.Now()
		out, err := runTest(ctx, c.dir, cmd, filepath.Join(tmp, fmt.Sprintf("clean-%d", len(rep.Clean))), "", 0)
		d := time.Since(start)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if err != nil {
			detail := firstFailure(out)
			if detail == "" {
				detail = err.Error()
			}
			return rep, fmt.Errorf("mutate: run: clean run of %q fails before any mutant (fix the tests first): %s", strings.Join(cmd, " "), detail)
		}
		if ranNoTest(out) {
			// Every mutant would survive a command that runs no test: that proves nothing.
			return rep, fmt.Errorf("mutate: run: clean run of %q runs no test (does its -run pattern match a test? is it quoted for a shell that is not there?)", strings.Join(cmd, " "))
		}
		rep.Clean = append(rep.Clean, CleanRun{Command: cmd, Duration: d})
		timeouts[key] = c.timeout
		if c.timeout == 0 {
			timeouts[key] = defaultTimeout(d)
		}
	}

	results := make([]Result, len(ms))
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
	)
	next := make(chan int)
	for range min(c.parallel, max(len(ms), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := Result{Mutant: ms[i], Command: cmds[i]}
				if cmds[i] == nil {
					r.Status, r.Reason = NotCovered, reasons[i]
				} else {
					r = runMutant(ctx, c.dir, tmp, i, r, timeouts[strings.Join(cmds[i], "\x00")])
				}
				if ctx.Err() != nil {
					continue // cut short by the caller: no verdict
				}
				mu.Lock()
				results[i] = r
				done++
				if c.progress != nil {
					c.progress(r, done, len(ms))
				}
				mu.Unlock()
			}
		}()
	}
	sent := 0
feed:
	for i := range ms {
		select {
		case next <- i:
			sent++
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for _, r := range results[:sent] {
		if r.Status != "" {
			rep.Results = append(rep.Results, r)
		}
	}
	rep.Duration = time.Since(rep.Started)
	rep.summarize()
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("mutate: run: interrupted after %d of %d mutants: %w", len(rep.Results), len(ms), err)
	}
	return rep, nil
}

// ShardOf returns the shard (1..n) a mutant id belongs to.
func ShardOf(id string, n int) int {
	if n <= 1 {
		return 1
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32()%uint32(n)) + 1
}

func runMutant(ctx context.Context, dir, tmp string, i int, r Result, timeout time.Duration) Result {
	src, err := os.ReadFile(r.path)
	if err != nil {
		r.Status, r.Reason = NotCovered, "read source: "+err.Error()
		return r
	}
	mdir := filepath.Join(tmp, fmt.Sprint(i))
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		r.Status, r.Reason = NotCovered, "write overlay: "+err.Error()
		return r
	}
	defer os.RemoveAll(mdir)
	mutated := filepath.Join(mdir, filepath.Base(r.path))
	overlay := filepath.Join(mdir, "overlay.json")
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {r.path: mutated}})
	if err := errors.Join(os.WriteFile(mutated, apply(src, r.edits), 0o644), os.WriteFile(overlay, ov, 0o644)); err != nil {
		r.Status, r.Reason = NotCovered, "write overlay: "+err.Error()
		return r
	}
	start := time.Now()
	out, err := runTest(ctx, dir, r.Command, mdir, overlay, timeout)
	r.Duration = time.Since(start)
	classify(&r, out, err)
	return r
}

var errTimedOut = errors.New("timed out")

// reapGrace is how long a cancelled run, and what it left running, has to end on SIGINT
// before it is killed.
const reapGrace = 5 * time.Second

// defaultTimeout is the bound on a mutant's test run when WithTimeout is not given: three
// times the clean run plus five minutes. The margin is wide because a failing run is slower
// than a passing one, not because of the machine: a session check that finds a leak has
// waited its whole deadline for the code to let go first (a leaked transaction costs each
// case that meets it its check's deadline, and may make the next cases wait for its locks),
// so a mutant the tests catch can take many times the clean run — with a fast clean run, far
// more than three times it (the bank's drop-conn-release: a 16 s clean run, killed in 2m50s,
// forty cases each waiting out a 2 s pool check). Only a mutant that hangs pays the margin.
func defaultTimeout(clean time.Duration) time.Duration { return 3*clean + 5*time.Minute }

// runTest runs cmd in dir; -count=1 and, with an overlay, -overlay reach the go tool through
// GOFLAGS (added to any GOFLAGS already set). TMPDIR is work/tmp, removed afterwards: what a
// test killed on a timeout leaves in its temporary directory (a Postgres data directory)
// goes with it.
func runTest(ctx context.Context, dir string, cmd []string, work, overlay string, timeout time.Duration) ([]byte, error) {
	tmpdir := filepath.Join(work, "tmp")
	if err := os.MkdirAll(tmpdir, 0o755); err != nil {
		return nil, fmt.Errorf("make TMPDIR: %w", err)
	}
	defer os.RemoveAll(tmpdir)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	x := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	x.Dir = dir
	flags := strings.TrimSpace(os.Getenv("GOFLAGS") + " -count=1")
	if overlay != "" {
		flags += " -overlay=" + overlay
	}
	x.Env = append(os.Environ(), "GOFLAGS="+flags, "TMPDIR="+tmpdir)
	stop := isolate(x, reapGrace)
	x.WaitDelay = reapGrace + time.Second
	var out bytes.Buffer
	x.Stdout, x.Stderr = &out, &out
	err := x.Run()
	reap(x, reapGrace)
	stop()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return out.Bytes(), errTimedOut
	}
	return out.Bytes(), err
}

var (
	failRE  = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
	buildRE = regexp.MustCompile(`(?m)\[(build|setup) failed\]|^# `)
	pkgFail = regexp.MustCompile(`(?m)^FAIL\s+(\S+)`)
)

// classify sets the status of r from its test output and error.
func classify(r *Result, out []byte, err error) {
	switch {
	case err == nil && r.Equivalent != "":
		r.Status = Equivalent
		return
	case err == nil:
		r.Status = Survived
		return
	case errors.Is(err, errTimedOut):
		r.Status, r.Reason = TimedOut, "no result within the per-mutant timeout"
		return
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		r.Status, r.Reason = NotCovered, "run "+r.Command[0]+": "+err.Error()
		return
	}
	text := string(out)
	for _, m := range failRE.FindAllStringSubmatch(text, -1) {
		r.Failed = append(r.Failed, m[1])
	}
	if m := failRE.FindStringSubmatchIndex(text); m != nil {
		r.Status = Killed
		// go test prints a failing test, then its failing subtests nested below it: name the
		// deepest of the first chain, whose message follows it.
		r.KilledBy = text[m[2]:m[3]]
		rest := text[m[1]:] // from the end of the name: failureAfter skips the rest of its line
		for {
			nl := strings.IndexByte(rest, '\n')
			if nl < 0 {
				break
			}
			next := failRE.FindStringSubmatchIndex(rest[nl+1:])
			if next == nil || strings.TrimSpace(rest[nl+1:nl+1+next[0]]) != "" {
				break
			}
			r.KilledBy = rest[nl+1+next[2] : nl+1+next[3]]
			rest = rest[nl+1+next[1]:]
		}
		r.Failure = failureAfter(rest)
		return
	}
	if buildRE.MatchString(text) {
		r.Status, r.Reason = NotCovered, "build failed: "+firstFailure(out)
		return
	}
	r.Status = Killed
	r.KilledBy = "(package)"
	if m := pkgFail.FindStringSubmatch(text); m != nil {
		r.KilledBy = "(package " + m[1] + ")"
	}
	r.Failure = firstFailure(out)
}

var okRE = regexp.MustCompile(`(?m)^ok\s+\S+.*$`)

// ranNoTest reports whether go test's output says it ran no test at all: every package line
// reads "[no tests to run]" or "[no test files]".
func ranNoTest(out []byte) bool {
	oks := okRE.FindAll(out, -1)
	for _, l := range oks {
		if !bytes.Contains(l, []byte("[no tests to run]")) {
			return false
		}
	}
	return len(oks) > 0 || bytes.Contains(out, []byte("[no test files]"))
}

// failureAfter is the first message line after a --- FAIL line (the t.Error text, with its
// file:line).
func failureAfter(s string) string {
	lines := strings.Split(s, "\n")
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") {
			continue
		}
		return l
	}
	return ""
}

// firstFailure is the first line of output that is not go test's bookkeeping.
func firstFailure(out []byte) string {
	for _, l := range strings.Split(string(out), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case t == "", t == "PASS", t == "FAIL", strings.HasPrefix(t, "ok "), strings.HasPrefix(t, "ok\t"),
			strings.HasPrefix(t, "=== "), strings.HasPrefix(t, "--- PASS"), strings.HasPrefix(t, "# "),
			strings.HasPrefix(t, "?"), strings.HasPrefix(t, "FAIL\t"), strings.HasPrefix(t, "FAIL "):
			continue
		}
		return t
	}
	return strings.TrimSpace(string(out))
}

// testTargets returns, for each mutated package, the packages of its module whose tests
// reach it: itself if it has tests, and every package with tests that imports it, directly
// or not.
func testTargets(ctx context.Context, dir string, ms []Mutant) (map[string][]string, error) {
	byMod := map[string][]string{}
	for _, m := range ms {
		byMod[m.modDir] = append(byMod[m.modDir], m.Package)
	}
	out := map[string][]string{}
	for modDir, mutated := range byMod {
		pkgs, err := packages.Load(&packages.Config{
			Context: ctx, Dir: modDir, Tests: true,
			Mode: packages.NeedName | packages.NeedImports | packages.NeedForTest,
		}, append([]string{"./..."}, mutated...)...)
		if err != nil {
			return nil, fmt.Errorf("mutate: run: list the packages of %s: %w", modDir, err)
		}
		deps := map[string][]string{} // package id -> imported ids
		var tests []*packages.Package
		for _, p := range pkgs {
			for _, q := range p.Imports {
				deps[p.ID] = append(deps[p.ID], q.ID)
			}
			if p.ForTest != "" && !strings.HasSuffix(p.ID, ".test") {
				tests = append(tests, p)
			}
		}
		for _, want := range mutated {
			if _, ok := out[want]; ok {
				continue
			}
			set := map[string]bool{}
			for _, t := range tests {
				if t.PkgPath == want || reaches(deps, t.ID, want, map[string]bool{}) {
					set[t.ForTest] = true
				}
			}
			list := make([]string, 0, len(set))
			for p := range set {
				list = append(list, p)
			}
			sort.Strings(list)
			out[want] = list
		}
	}
	return out, nil
}

// reaches reports whether package id imports the package whose path (or id) is want,
// directly or not.
func reaches(deps map[string][]string, id, want string, seen map[string]bool) bool {
	if seen[id] {
		return false
	}
	seen[id] = true
	for _, d := range deps[id] {
		if d == want || strings.HasPrefix(d, want+" [") || reaches(deps, d, want, seen) {
			return true
		}
	}
	return false
}
