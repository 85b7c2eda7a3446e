package cli

import (
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
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
		{"unquoted-test", []string{"mutate", "-test", "go test -run 'A"}, exitUsage, "-test: unterminated '"},
		{"empty-junit", []string{"mutate", "-report-junit", ""}, exitUsage, "-report-junit: empty path"},
		{"empty-dir", []string{"mutate", "-report-dir", ""}, exitUsage, "-report-dir: empty path"},
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
	code, out, errOut := runCLI(t, context.Background(), noEnv, "mutate", "-list", "-v", "-operators", "drop-stmt-close,drop-defer-cancel", "../mutate/testdata/src/sites")
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

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{"plain", "go test ./store", []string{"go", "test", "./store"}, ""},
		{"single-quoted", `go test ./examples/bank -run 'TestMatrix/sqlmock|TestREADME'`, []string{"go", "test", "./examples/bank", "-run", "TestMatrix/sqlmock|TestREADME"}, ""},
		{"double-quoted", `go test -run "A B" -x`, []string{"go", "test", "-run", "A B", "-x"}, ""},
		{"escapes", `a\ b "c\"d" 'e\f'`, []string{"a b", `c"d`, `e\f`}, ""},
		{"joined", `-run='^A$'x`, []string{"-run=^A$x"}, ""},
		{"empty-quotes", `go ''`, []string{"go", ""}, ""},
		{"blank", "  \t ", nil, ""},
		{"unterminated-single", "go 'x", nil, "unterminated '"},
		{"unterminated-double", `go "x`, nil, `unterminated "`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitCommand(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("splitCommand(%q) error: got %v; want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") || len(got) != len(tt.want) {
				t.Errorf("splitCommand(%q): got %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestMutateReports runs one mutant that survives (drop-rows-close on the store of mutate's
// testdata) with -report-dir and -report-junit: every format is written, and each names
// the survivor.
func TestMutateReports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test twice; skipped in -short")
	}
	dir := t.TempDir()
	junit := filepath.Join(dir, "ci", "mutants.xml")
	code, out, errOut := runCLI(t, context.Background(), noEnv, "mutate", "-operators", "drop-rows-close",
		"-report-dir", filepath.Join(dir, "reports"), "-report-junit", junit, "../mutate/testdata/src/store")
	if code != exitViolations {
		t.Fatalf("exit %d; want %d (a survivor)\nstdout: %s\nstderr: %s", code, exitViolations, out, errOut)
	}
	const survivor = "drop-rows-close@mutate/testdata/src/store/store.go:38"
	for _, p := range []string{filepath.Join(dir, "reports", "report.json"), filepath.Join(dir, "reports", "report.html"), junit} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("report not written: %v\nstderr: %s", err, errOut)
			continue
		}
		if !strings.Contains(string(b), survivor) {
			t.Errorf("%s does not name the survivor %s", p, survivor)
		}
		if !strings.Contains(errOut, p) {
			t.Errorf("stderr does not name %s:\n%s", p, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "reports", "junit.xml")); err == nil {
		t.Errorf("-report-junit is set: want no junit.xml in -report-dir")
	}
	b, _ := os.ReadFile(junit)
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil || doc.Tests != 1 || doc.Failures != 1 {
		t.Errorf("junit: tests=%d failures=%d (%v); want 1 and 1\n%s", doc.Tests, doc.Failures, err, b)
	}
}
