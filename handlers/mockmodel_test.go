package handlers

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// The sqlmock model of this package's unit tests (operations: each operation's begin,
// queries, execs and commits, by hand) and the golden traces the harness records on
// PostgreSQL (threadsuite/testdata, from which the sqlmock matrix builds its expectations)
// state one fact twice: the database calls of each operation, in order. This test keeps
// them one fact: the model must be the recorded calls, kind and SQL, or it fails naming
// the first difference.
func TestMockModelIsTheGoldenTrace(t *testing.T) {
	golden := os.DirFS(filepath.Join("..", "threadsuite", "testdata"))
	for _, op := range operations() {
		t.Run(op.name, func(t *testing.T) {
			recorded, err := scenarios.GoldenCalls(golden, op.name)
			if err != nil {
				t.Fatal(err)
			}
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

// call is the step as scenarios.GoldenCalls reads it from a trace: its kind, and the SQL
// of a query or exec with its whitespace collapsed.
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
