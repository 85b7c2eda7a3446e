package mutate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestRun mutates testdata/src/store and runs its sqlmock tests against each mutant: they
// catch every mutant but drop-rows-close, the gap the store's doc names.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test once per mutant; skipped in -short")
	}
	ctx := context.Background()
	ms, err := Find(ctx, []string{"./testdata/src/store"},
		WithOperators("drop-deferred-rollback", "ignore-commit-error", "drop-rows-err-check", "drop-rows-close"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 {
		t.Fatalf("Find: got %d mutants; want 4 (one per operator)", len(ms))
	}
	// A directive that calls a mutant the tests catch equivalent is stale: reported so.
	for i := range ms {
		if ms[i].Operator == "ignore-commit-error" {
			ms[i].Equivalent = "marked by mistake"
		}
	}
	var progress []string
	rep, err := Run(ctx, ms, WithParallel(1), WithProgress(func(r Result, done, total int) {
		progress = append(progress, r.ID)
		if total != len(ms) {
			t.Errorf("progress: total %d; want %d", total, len(ms))
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		status   Status
		killedBy string
	}{
		"drop-deferred-rollback": {Killed, "TestTransferDebitFailsRollsBack"},
		"ignore-commit-error":    {Killed, "TestTransferCommitFails"},
		"drop-rows-err-check":    {Killed, "TestBalancesRowError"},
		"drop-rows-close":        {Survived, ""},
	}
	for _, r := range rep.Results {
		w := want[r.Operator]
		if r.Status != w.status || r.KilledBy != w.killedBy {
			t.Errorf("%s: got %s by %q; want %s by %q (failure %q, reason %q)", r.ID, r.Status, r.KilledBy, w.status, w.killedBy, r.Failure, r.Reason)
		}
		if r.Status == Killed && r.Failure == "" {
			t.Errorf("%s: killed with no failure line", r.ID)
		}
	}
	if got := (Summary{Total: 4, Killed: 3, Survived: 1}); rep.Summary != got {
		t.Errorf("summary: got %+v; want %+v", rep.Summary, got)
	}
	if len(progress) != 4 || len(rep.Clean) != 1 {
		t.Errorf("got %d progress calls and %d clean runs; want 4 and 1", len(progress), len(rep.Clean))
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"survivors (1)", "mutate/testdata/src/store/store.go:38  drop-rows-close", "-	defer rows.Close()", "4 mutants: 3 killed, 1 survived",
		"killed, though marked equivalent (1): remove the //sessionsafe:equivalent directive", "ignore-commit-error: killed by TestTransferCommitFails"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text report lacks %q; got:\n%s", s, text.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Schema  string `json:"schema"`
		Results []struct {
			ID, Status, KilledBy string
		} `json:"results"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Schema != SchemaV1 || len(back.Results) != 4 {
		t.Errorf("json report: got schema %q, %d results, error %v; want %q, 4, nil", back.Schema, len(back.Results), err, SchemaV1)
	}
}

func TestRunShard(t *testing.T) {
	ms, err := sitesMutants()
	if err != nil {
		t.Fatal(err)
	}
	// A shard with no mutant of its own runs nothing, not even the clean run.
	var none []Mutant
	for _, m := range ms {
		if ShardOf(m.ID, 1000) == 1 {
			none = append(none, m)
		}
	}
	rep, err := Run(context.Background(), none, WithShard(2, 1000), WithTest([]string{"false"}))
	if err != nil || len(rep.Results) != 0 || rep.Shard != "2/1000" {
		t.Fatalf("Run: got %d results, shard %q, error %v; want 0, 2/1000, nil", len(rep.Results), rep.Shard, err)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		ms   []Mutant
		opts []Option
		want string
	}{
		{"not-from-find", []Mutant{{ID: "x"}}, nil, "mutant x did not come from Find"},
		{"bad-shard", nil, []Option{WithShard(3, 2)}, "WithShard(3, 2)"},
		{"bad-parallel", nil, []Option{WithParallel(0)}, "WithParallel(0)"},
		{"find-option", nil, []Option{WithOperators("drop-rows-close")}, "option WithOperators does not apply here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.ms, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: got error %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	exitErr := exec.Command("false").Run()
	tests := []struct {
		name       string
		equivalent string // the site's equivalence directive, if any
		out        string
		err        error
		status     Status
		killedBy   string
		detail     string
	}{
		{"pass", "", "ok  \texample/store\t0.1s\n", nil, Survived, "", ""},
		{"pass-equivalent", "rows close with the transaction", "ok  \texample/store\t0.1s\n", nil, Equivalent, "", ""},
		{"fails-though-equivalent", "rows close with the transaction", "--- FAIL: TestList (0.00s)\n    store_test.go:9: leaked rows\n", exitErr,
			Killed, "TestList", "store_test.go:9: leaked rows"},
		{"test-fails", "", "--- FAIL: TestTransfer (0.00s)\n    store_test.go:20: Transfer: got nil error\nFAIL\nFAIL\texample/store\t0.1s\n", exitErr,
			Killed, "TestTransfer", "store_test.go:20: Transfer: got nil error"},
		{"subtest-fails", "", "--- FAIL: TestOps (0.00s)\n    --- FAIL: TestOps/send (0.00s)\n        ops_test.go:9: leaked 1 connection(s)\n", exitErr,
			Killed, "TestOps/send", "ops_test.go:9: leaked 1 connection(s)"},
		{"nested-subtests", "", "--- FAIL: TestMatrix (0.50s)\n    --- FAIL: TestMatrix/sqlmock (0.40s)\n        --- FAIL: TestMatrix/sqlmock/Transfer (0.10s)\n" +
			"            --- FAIL: TestMatrix/sqlmock/Transfer/step-11-commit/error (0.00s)\n                runner.go:953: scenarios: invariant \"error-surfaced\" broken\n" +
			"            --- FAIL: TestMatrix/sqlmock/Transfer/step-12-rollback/error (0.00s)\n                runner.go:953: other\nFAIL\n", exitErr,
			Killed, "TestMatrix/sqlmock/Transfer/step-11-commit/error", `runner.go:953: scenarios: invariant "error-surfaced" broken`},
		{"package-fails", "", "goleak: Errors on successful test run: found unexpected goroutines\nFAIL\texample/store\t0.3s\n", exitErr,
			Killed, "(package example/store)", "goleak: Errors on successful test run: found unexpected goroutines"},
		{"build-fails", "", "# example/store\nstore/store.go:12:2: declared and not used: x\nFAIL\texample/store [build failed]\n", exitErr,
			NotCovered, "", "build failed: store/store.go:12:2: declared and not used: x"},
		{"timeout", "", "", errTimedOut, TimedOut, "", "no result within the per-mutant timeout"},
		{"no-command", "", "", errors.New(`exec: "gotest": executable file not found in $PATH`), NotCovered, "", `run go: exec: "gotest": executable file not found in $PATH`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Result{Mutant: Mutant{Equivalent: tt.equivalent}, Command: []string{"go", "test"}}
			classify(&r, []byte(tt.out), tt.err)
			detail := r.Failure + r.Reason
			if r.Status != tt.status || r.KilledBy != tt.killedBy || detail != tt.detail {
				t.Errorf("got %s by %q: %q; want %s by %q: %q", r.Status, r.KilledBy, detail, tt.status, tt.killedBy, tt.detail)
			}
		})
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := []byte("a\nb\nc\nd\ne\n")
	b := []byte("a\nb\nX\nd\ne\n")
	want := "--- a/f.go\n+++ b/f.go\n@@ -2,3 +2,3 @@\n b\n-c\n+X\n d\n"
	if got := unifiedDiff("f.go", a, b, 1); got != want {
		t.Errorf("unifiedDiff mismatch (-want +got):\n-%q\n+%q", want, got)
	}
	if got := unifiedDiff("f.go", a, a, 1); got != "" {
		t.Errorf("unifiedDiff of equal files: got %q; want empty", got)
	}
}

func TestRanNoTest(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want bool
	}{
		{"ran", "ok  \texample/store\t0.1s\n", false},
		{"no-match", "ok  \texample/store\t0.1s [no tests to run]\n", true},
		{"no-match-verbose", "testing: warning: no tests to run\nPASS\nok  \texample/store\t0.1s [no tests to run]\n", true},
		{"no-files", "?   \texample/store\t[no test files]\n", true},
		{"one-of-two", "ok  \texample/a\t0.1s [no tests to run]\nok  \texample/b\t0.2s\n", false},
		{"files-and-run", "?   \texample/a\t[no test files]\nok  \texample/b\t0.2s\n", false},
		{"not-go-test", "all good\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ranNoTest([]byte(tt.out)); got != tt.want {
				t.Errorf("ranNoTest(%q): got %v; want %v", tt.out, got, tt.want)
			}
		})
	}
}
