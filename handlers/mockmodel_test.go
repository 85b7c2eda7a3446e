package handlers

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The sqlmock model of this package's unit tests (operations: each operation's begin,
// queries, execs and commits, by hand) and the golden traces the harness records on
// PostgreSQL (threadsuite/testdata, from which the sqlmock matrix builds its expectations)
// state one fact twice: the database calls of each operation, in order. This test keeps
// them one fact: the model must be the recorded calls, kind and SQL, or it fails naming
// the first difference.
func TestMockModelIsTheGoldenTrace(t *testing.T) {
	for _, op := range operations() {
		t.Run(op.name, func(t *testing.T) {
			recorded := goldenCalls(t, filepath.Join("..", "threadsuite", "testdata", op.name+".trace"))
			var modelled []string
			for _, s := range op.steps {
				modelled = append(modelled, s.call())
			}
			if !slices.Equal(modelled, recorded) {
				t.Errorf("the unit tests' model of %s (operations, mock_test.go) differs from its golden trace: fix the model, or refresh the trace if the code changed (go test ./threadsuite -run '^TestGolden$' -update)\nmodel:\n  %s\ntrace:\n  %s",
					op.name, strings.Join(modelled, "\n  "), strings.Join(recorded, "\n  "))
			}
		})
	}
}

// call is the step as the golden trace would show it: its kind, and the SQL of a query or
// exec with its whitespace folded.
func (s step) call() string {
	switch s.kind {
	case stepBegin:
		return "begin"
	case stepCommit:
		return "commit"
	case stepQuery:
		return "query: " + strings.Join(strings.Fields(s.sql), " ")
	default:
		return "exec: " + strings.Join(strings.Fields(s.sql), " ")
	}
}

// goldenCalls reads a golden trace's begin, query, exec and commit steps (the rest —
// reset, next, rows-close — are database/sql's, not the operation's) in call's form.
func goldenCalls(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("golden trace: %v", err)
	}
	defer f.Close()
	var calls []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if sql, ok := strings.CutPrefix(line, "  sql: "); ok && len(calls) > 0 {
			calls[len(calls)-1] += ": " + strings.Join(strings.Fields(sql), " ")
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 3 && fields[0] == "step" {
			switch fields[2] {
			case "begin", "commit", "query", "exec":
				calls = append(calls, fields[2])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("golden trace %s: %v", path, err)
	}
	return calls
}
