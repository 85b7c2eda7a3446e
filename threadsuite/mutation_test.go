package threadsuite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/mutate"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// TestKills runs every focused check (Checks) on the handlers as built: on the correct
// handlers none finds anything. A check that finds something fails with one subtest per
// invariant it broke (TestKills/<backend>/<check>/<invariant>), so the mutation proof can
// tell which check caught a mutant, and with what.
func TestKills(t *testing.T) {
	db := pgtest.New(t, pgtest.WithMigration("handlers", handlers.Migrate))
	env := CheckEnv{DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName, Seed: probeSeed(t)}
	for _, c := range Checks() {
		t.Run(c.String(), func(t *testing.T) {
			found, err := c.Run(t.Context(), env)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, f := range found {
				if seen[f.Invariant] {
					continue
				}
				seen[f.Invariant] = true
				t.Run(f.Invariant, func(t *testing.T) { t.Errorf("%s: %s", f.Where, f.Message) })
			}
		})
	}
}

// killCommand is the test command the mutation proof runs for an operator mutant: the
// focused checks, the original eleven cases and the migration's matrix (TestMigrateMatrix)
// of this package, and the ownership check of the handlers' own tests.
var killCommand = []string{"go", "test", "./threadsuite", "./handlers", "-run", "^(TestKills|TestOriginal|TestMigrateMatrix|TestPostgresOwnership)$"}

// caughtByCommand is the test command for a planted bug: only the tests its CaughtBy names
// (down to the check or original case: an invariant's subtest exists only when it fails), so
// a run costs a few checks, not all of them.
func caughtByCommand(b PlantedBug) []string {
	var levels [3][]string
	pkgs := []string{"./threadsuite"}
	for _, name := range b.CaughtBy {
		if !strings.HasPrefix(name, "TestKills/") && !strings.HasPrefix(name, "TestOriginal/") {
			pkgs = []string{"./threadsuite", "./handlers"} // a test of the handlers' own
		}
		for i, part := range strings.SplitN(name, "/", 4) {
			if i < 3 && !slices.Contains(levels[i], part) {
				levels[i] = append(levels[i], part)
			}
		}
	}
	var run []string
	for _, l := range levels {
		if len(l) == 0 {
			break
		}
		for i := range l {
			l[i] = regexp.QuoteMeta(l[i])
		}
		run = append(run, "^("+strings.Join(l, "|")+")$")
	}
	return append(append([]string{"go", "test"}, pkgs...), "-run", strings.Join(run, "/"))
}

// ciBugs are the planted bugs the proof runs by default (make test): one per kind of check —
// the unit of work on both backends with the originals and a probe, a cancellation that only
// a real server shows, a lost update that only a concurrent probe shows. Each bug costs a
// clean run and a mutant run of its tests (about 1.5 minutes on a loaded 2-core machine).
var ciBugs = []string{"RollbackMissingOnError", "ContextNotPassed", "MetadataReadModifyWrite"}

// TestMutationProof builds the handlers with known session bugs in turn (PlantedBugs,
// source mutants through go's -overlay; the tree is never written), runs the tests each
// names (CaughtBy) and requires every one of them to fail. By default it runs ciBugs; with
// SESSIONSAFE_MUTATE_ALL=1 every planted bug, and every operator mutant of ./handlers
// against killCommand, each of which must be killed or marked at its site with the reason it
// cannot be caught (mutate.EquivalentDirective). SESSIONSAFE_MUTATE_SHARD=i/n runs only shard i of n of the
// mutants.
func TestMutationProof(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test once per mutant; skipped in -short")
	}
	t.Parallel() // its mutants build and run in go test processes of their own, mostly compiling and waiting: the package's other tests run meanwhile
	ctx := t.Context()
	all := os.Getenv("SESSIONSAFE_MUTATE_ALL") == "1"
	var bugs []PlantedBug
	for _, b := range PlantedBugs() {
		if all || slices.Contains(ciBugs, b.Name) {
			bugs = append(bugs, b)
		}
	}
	patches := make([]mutate.Patch, len(bugs))
	for i, b := range bugs {
		patches[i] = b.Patch
	}
	ms, err := mutate.Patched(ctx, patches, mutate.WithDir(".."))
	if err != nil {
		t.Fatal(err)
	}
	if all {
		ops, err := mutate.Find(ctx, []string{"./handlers"}, mutate.WithDir(".."))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, ops...)
	}
	opts := []mutate.Option{mutate.WithDir(".."), mutate.WithTest(killCommand), mutate.WithParallel(2)}
	if s := os.Getenv("SESSIONSAFE_MUTATE_SHARD"); s != "" {
		var i, n int
		if _, err := fmt.Sscanf(s, "%d/%d", &i, &n); err != nil || n < 1 || i < 1 || i > n {
			t.Fatalf("SESSIONSAFE_MUTATE_SHARD=%q: want i/n with 1 <= i <= n", s)
		}
		opts = append(opts, mutate.WithShard(i, n))
	}
	byName := map[string]PlantedBug{}
	for _, b := range bugs {
		byName[b.Name] = b
	}
	bugOf := func(m mutate.Mutant) (PlantedBug, bool) {
		b, ok := byName[strings.SplitN(m.ID, "@", 2)[0]]
		return b, ok && m.Operator == mutate.PatchOperator
	}
	rep, err := mutate.Run(ctx, ms, append(opts,
		mutate.WithTestFor(func(m mutate.Mutant) []string {
			if b, ok := bugOf(m); ok {
				return caughtByCommand(b)
			}
			return nil
		}),
		mutate.WithProgress(func(r mutate.Result, done, total int) {
			t.Logf("%d/%d %s: %s %s (%s) failed: %v", done, total, r.ID, r.Status, r.KilledBy, r.Duration.Round(1e8), r.Failed)
		}))...)
	var text bytes.Buffer
	_ = rep.WriteText(&text)
	t.Logf("kill table (%s):\n%s", rep.Duration.Round(1e9), text.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if b, ok := bugOf(r.Mutant); ok {
			if r.Status != mutate.Killed {
				t.Errorf("planted bug %s: %s (%s); want killed\n%s", b.Name, r.Status, r.Reason, r.Diff)
				continue
			}
			for _, want := range b.CaughtBy {
				if !slices.Contains(r.Failed, want) {
					t.Errorf("planted bug %s: %s did not fail; the tests that failed: %v", b.Name, want, r.Failed)
				}
			}
			continue
		}
		switch {
		case r.Status == mutate.Killed && r.Equivalent != "":
			t.Errorf("mutant %s is killed (by %s) but marked equivalent (%s): remove its %s directive", r.ID, r.KilledBy, r.Equivalent, mutate.EquivalentDirective)
		case r.Status != mutate.Killed && r.Status != mutate.Equivalent:
			t.Errorf("mutant %s %s (%s): a gap in the checks, or mark it %s with the reason\n%s", r.ID, r.Status, r.Reason, mutate.EquivalentDirective, r.Diff)
		}
	}
}

// TestPlantedBugsApply: every planted bug still matches the handlers exactly once, and
// names only tests that exist.
func TestPlantedBugsApply(t *testing.T) {
	bugs := PlantedBugs()
	if len(bugs) < 12 {
		t.Fatalf("%d planted bugs; want at least 12", len(bugs))
	}
	patches := make([]mutate.Patch, len(bugs))
	for i, b := range bugs {
		patches[i] = b.Patch
	}
	if _, err := mutate.Patched(context.Background(), patches, mutate.WithDir("..")); err != nil {
		t.Fatal(err)
	}
	for _, name := range ciBugs {
		if !slices.ContainsFunc(bugs, func(b PlantedBug) bool { return b.Name == name }) {
			t.Errorf("ciBugs names %q, which is no planted bug", name)
		}
	}
	checks := map[string]bool{}
	for _, c := range Checks() {
		checks["TestKills/"+c.String()] = true
	}
	cases := map[string]bool{}
	for _, o := range originals() {
		cases["TestOriginal/"+o.name] = true
	}
	for _, b := range bugs {
		if len(b.CaughtBy) == 0 {
			t.Errorf("%s: no test named to catch it", b.Name)
		}
		for _, name := range b.CaughtBy {
			parts := strings.Split(name, "/")
			ok := len(parts) >= 3 && checks[strings.Join(parts[:3], "/")] ||
				len(parts) == 3 && cases[strings.Join(parts[:2], "/")] ||
				name == "TestPostgresOwnership"
			if !ok {
				t.Errorf("%s: caught by %q: no such check, original case or test", b.Name, name)
			}
		}
	}
}
