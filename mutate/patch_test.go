package mutate

import (
	"context"
	"strings"
	"testing"
)

// commitErrorSwallowed is a bug written by hand: a failed commit reported as success.
var commitErrorSwallowed = Patch{
	Name: "CommitErrorSwallowed",
	File: "testdata/src/store/store.go",
	Old:  `return fmt.Errorf("commit: %w", err)`,
	New:  "return nil",
}

func TestPatched(t *testing.T) {
	ms, err := Patched(context.Background(), []Patch{commitErrorSwallowed})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("Patched: got %d mutants; want 1", len(ms))
	}
	m := ms[0]
	if want := "CommitErrorSwallowed@mutate/testdata/src/store/store.go:27"; m.ID != want || m.Operator != PatchOperator || m.Line != 27 {
		t.Errorf("mutant: id %q, operator %q, line %d; want %q, %q, 27", m.ID, m.Operator, m.Line, want, PatchOperator)
	}
	if m.Package != "github.com/sessionsafe/sessionsafe/mutate/testdata/src/store" {
		t.Errorf("package %q; want the store's import path", m.Package)
	}
	if !strings.Contains(m.Diff, "-\t\treturn fmt.Errorf(\"commit: %w\", err)\n+\t\treturn nil\n") {
		t.Errorf("diff:\n%s\nwant the commit error's return out and return nil in", m.Diff)
	}
}

// TestPatchedRefusesDrift: a patch that does not match its file exactly once, or is
// malformed, is an error naming the patch — never a mutant that silently mutates nothing.
func TestPatchedRefusesDrift(t *testing.T) {
	with := func(f func(p *Patch)) []Patch {
		p := commitErrorSwallowed
		f(&p)
		return []Patch{p}
	}
	tests := []struct {
		name    string
		patches []Patch
		want    string
	}{
		{"old-gone", with(func(p *Patch) { p.Old = "return fmt.Errorf(\"commit: %v\", err)" }), `patch "CommitErrorSwallowed": the old snippet occurs 0 times`},
		{"old-twice", with(func(p *Patch) { p.Old = "UPDATE accounts" }), "occurs 2 times in testdata/src/store/store.go; want exactly once"},
		{"no-change", with(func(p *Patch) { p.New = p.Old }), "want a non-empty Old that New changes"},
		{"test-file", with(func(p *Patch) { p.File = "testdata/src/store/store_test.go" }), "want a Go file that is not a test"},
		{"no-file", with(func(p *Patch) { p.File = "testdata/src/store/gone.go" }), "gone.go"},
		{"no-name", with(func(p *Patch) { p.Name = "" }), "want a name without spaces or @"},
		{"same-name", []Patch{commitErrorSwallowed, commitErrorSwallowed}, "two patches have this name"},
		{"unparsable", with(func(p *Patch) { p.New = "return (" }), "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := Patched(context.Background(), tt.patches)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Patched: got %d mutants, error %v; want an error containing %q", len(ms), err, tt.want)
			}
		})
	}
	if _, err := Patched(context.Background(), nil, WithParallel(2)); err == nil || !strings.Contains(err.Error(), "WithParallel does not apply") {
		t.Errorf("Patched with a Run option: error %v; want it refused", err)
	}
}

// TestRunPatch runs a patch through Run like an operator's mutant: the store's tests catch
// the swallowed commit error, and the result names every test that failed.
func TestRunPatch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test; skipped in -short")
	}
	ms, err := Patched(context.Background(), []Patch{commitErrorSwallowed})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), ms, WithParallel(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Status != Killed || len(rep.Results[0].Failed) == 0 {
		t.Fatalf("got %+v; want the patch killed, with the failing tests named", rep.Results)
	}
	if len(rep.Operators) != 1 || rep.Operators[0].Operator != PatchOperator || rep.Operators[0].Killed != 1 {
		t.Errorf("operators: got %+v; want one %s row, killed", rep.Operators, PatchOperator)
	}
	t.Logf("killed by %s: %s (failed: %v)", rep.Results[0].KilledBy, rep.Results[0].Failure, rep.Results[0].Failed)
}

// TestRunTestFor: each mutant runs the command WithTestFor gives it, after a clean run of
// that command; a mutant it gives none runs the WithTest command.
func TestRunTestFor(t *testing.T) {
	ms, err := Patched(context.Background(), []Patch{commitErrorSwallowed, {
		Name: "DebitLost", File: "testdata/src/store/store.go",
		Old: `return fmt.Errorf("debit: %w", err)`, New: "return nil",
	}})
	if err != nil {
		t.Fatal(err)
	}
	failsWithOverlay := []string{"sh", "-c", `case "$GOFLAGS" in *-overlay=*) exit 1;; esac`}
	rep, err := Run(context.Background(), ms, WithTest([]string{"true"}), WithTestFor(func(m Mutant) []string {
		if strings.HasPrefix(m.ID, "DebitLost@") {
			return failsWithOverlay
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Status{}
	for _, r := range rep.Results {
		got[strings.SplitN(r.ID, "@", 2)[0]] = r.Status
	}
	if got["DebitLost"] != Killed || got["CommitErrorSwallowed"] != Survived || len(rep.Clean) != 2 {
		t.Errorf("got %v with %d clean runs; want DebitLost killed by its own command, CommitErrorSwallowed surviving true, 2 clean runs", got, len(rep.Clean))
	}
}
