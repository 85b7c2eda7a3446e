package scenarios

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Example runs the sqlmock matrix of one catalog operation: every fault at
// every step, each case checked, expectations generated from the golden
// trace.
func Example() {
	op, _ := Lookup(Catalog(), OpUpdateThread)
	rep, err := Run(context.Background(), Config{Backend: Sqlmock}, op)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d cases, %d findings\n", len(rep.Results), len(rep.Findings()))
	fmt.Println(rep.Results[0].Case.Name())
	fmt.Println(rep.Results[len(rep.Results)-1].Case.Name())
	// Output:
	// 39 cases, 0 findings
	// UpdateThread/step-0-clean/clean
	// UpdateThread/step-1-connect/latency=20ms
}

// ExampleCase_Plan shows a case's subtest name and the fault plan it arms.
func ExampleCase_Plan() {
	c := Case{Backend: Postgres, Operation: OpUpdateThread, Step: 7, StepKind: "commit", Fault: "pgerr=40001"}
	fmt.Println(c.Name())
	fmt.Println(c.Plan())
	fmt.Println(c)
	// Output:
	// UpdateThread/step-7-commit/pgerr=40001
	// step=7:pgerr=40001
	// postgres/UpdateThread/step-7-commit/pgerr=40001
}

// TestExpectFor checks the model the sqlmock expectations follow, on a
// trace of two units (read, then write) like AutoRename's.
func TestExpectFor(t *testing.T) {
	e := []gstep{{Kind: "begin"}, {Kind: "query", SQL: "read"}, {Kind: "commit"},
		{Kind: "begin"}, {Kind: "exec", SQL: "write"}, {Kind: "commit"}}
	kinds := func(steps []gstep) string {
		var out []string
		for _, s := range steps {
			out = append(out, s.Kind+s.SQL)
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name     string
		k        int
		kind     string
		out      outcome
		rollback bool
		want     string
	}{
		{"absorbed-runs-everything", 0, "begin", outAbsorbed, true, "begin queryread commit begin execwrite commit"},
		{"begin-fails-nothing-more", 0, "begin", outSurfaces, true, ""},
		{"query-fails-rollback", 1, "query", outSurfaces, true, "begin rollback"},
		{"query-fails-dead-conn-no-rollback", 1, "query", outSurfaces, false, "begin"},
		{"commit-fails-no-rollback", 2, "commit", outSurfaces, true, "begin queryread"},
		{"second-unit-exec-fails", 4, "exec", outSurfaces, true, "begin queryread commit begin rollback"},
		{"retried-query-reruns-unit-and-rest", 1, "query", outRetried, true, "begin rollback begin queryread commit begin execwrite commit"},
		{"retried-commit-reruns-unit", 5, "commit", outRetried, true, "begin queryread commit begin execwrite begin execwrite commit"},
		{"next-fails-rollback", 2, "next", outSurfaces, true, "begin queryread rollback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kinds(expectFor(e, tt.k, tt.kind, false, tt.out, tt.rollback)); got != tt.want {
				t.Errorf("expectFor: got %q; want %q", got, tt.want)
			}
		})
	}
}

// TestGoTestCommand checks the replay command anchors what must be exact.
func TestGoTestCommand(t *testing.T) {
	got := goTestCommand("TestMatrix/postgres/UpdateThread/step-7-commit/pgerr=40001")
	want := "go test ./scenarios -run '^TestMatrix$/postgres/UpdateThread/step-7-commit/^pgerr=40001$'"
	if got != want {
		t.Errorf("got %s; want %s", got, want)
	}
}
