package mutant

import (
	"context"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestWithHas(t *testing.T) {
	base := context.Background()
	tests := []struct {
		name    string
		planted []Bug
		want    []Bug
		notWant []Bug
	}{
		{name: "none", notWant: All()},
		{name: "one", planted: []Bug{CommitErrorIgnored}, want: []Bug{CommitErrorIgnored}, notWant: []Bug{RollbackMissingOnError, SendRetryWithoutClientID}},
		{name: "two", planted: []Bug{RollbackMissingOnError, SendRetryWithoutClientID}, want: []Bug{RollbackMissingOnError, SendRetryWithoutClientID}, notWant: []Bug{CommitErrorIgnored}},
		{name: "out-of-range-ignored", planted: []Bug{0, -1, Bug(99)}, notWant: All()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := With(base, tt.planted...)
			for _, b := range tt.want {
				if !Has(ctx, b) {
					t.Errorf("Has(%v) = false; want true", b)
				}
			}
			for _, b := range tt.notWant {
				if Has(ctx, b) {
					t.Errorf("Has(%v) = true; want false", b)
				}
			}
		})
	}
}

func TestWithAccumulates(t *testing.T) {
	ctx := With(With(context.Background(), RowsNotClosed), ConnNeverClosed)
	if !Has(ctx, RowsNotClosed) || !Has(ctx, ConnNeverClosed) {
		t.Fatal("With over a context with bugs: got the earlier bugs dropped; want both planted")
	}
}

func TestAllAndNames(t *testing.T) {
	all := All()
	if len(all) != 12 {
		t.Fatalf("All: got %d bugs; want 12", len(all))
	}
	seen := map[string]bool{}
	for _, b := range all {
		s := b.String()
		if s == "" || seen[s] {
			t.Fatalf("bug %d: name %q empty or repeated", int(b), s)
		}
		seen[s] = true
		if p, ok := Parse(s); !ok || p != b {
			t.Fatalf("Parse(%q) = %v, %v; want %v", s, p, ok, b)
		}
	}
	if got := Bug(99).String(); got != "Bug(99)" {
		t.Fatalf("Bug(99).String() = %q; want %q", got, "Bug(99)")
	}
	if _, ok := Parse("NoSuchBug"); ok {
		t.Fatal(`Parse("NoSuchBug") succeeded; want false`)
	}
}
