package main

import (
	"context"
	"strings"
	"testing"
)

func TestMutateUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     int
		contains string // in stderr (or stdout for help)
	}{
		{"help", []string{"mutate", "-h"}, exitOK, "drop-deferred-rollback"},
		{"listed-in-usage", []string{"-h"}, exitOK, "mutate  plant session bugs"},
		{"unknown-flag", []string{"mutate", "-bogus"}, exitUsage, "-bogus"},
		{"shard", []string{"mutate", "-shard", "9/8"}, exitUsage, `-shard "9/8"`},
		{"parallel", []string{"mutate", "-parallel", "0"}, exitUsage, "-parallel 0"},
		{"operator", []string{"mutate", "-operators", "drop-rows-close,flip-plus"}, exitUsage, `unknown operator "flip-plus"`},
		{"empty-test", []string{"mutate", "-test", " "}, exitUsage, "-test: empty command"},
		{"no-package", []string{"mutate", "-list", "./no/such/package"}, exitUsage, "sessionsafe mutate: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, context.Background(), noEnv, tt.args...)
			if code != tt.want {
				t.Fatalf("exit %d; want %d\nstdout: %s\nstderr: %s", code, tt.want, out, errOut)
			}
			if !strings.Contains(out+errOut, tt.contains) {
				t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", tt.contains, out, errOut)
			}
		})
	}
}

func TestMutateList(t *testing.T) {
	code, out, errOut := runCLI(t, context.Background(), noEnv, "mutate", "-list", "-v", "-operators", "drop-stmt-close,drop-defer-cancel", "../../mutate/testdata/src/sites")
	if code != exitOK {
		t.Fatalf("exit %d; want %d\nstderr: %s", code, exitOK, errOut)
	}
	for _, want := range []string{
		"drop-defer-cancel@mutate/testdata/src/sites/sql.go:25\n",
		"drop-stmt-close@mutate/testdata/src/sites/sql.go:94\n",
		"    -	defer stmt.Close()\n",
		"2 mutants\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-list output lacks %q; got:\n%s", want, out)
		}
	}
}
