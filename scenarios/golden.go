package scenarios

import (
	"bufio"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
)

// ErrGolden is wrapped by errors about a golden trace that cannot be read or
// does not fit the run.
var ErrGolden = errors.New("scenarios: golden trace")

// GoldenTime is the timestamp every recorded time is normalised to.
var GoldenTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// gstep is one step of a golden trace: what a clean run of an operation did,
// with the data the driver returned, normalised (no timestamps, no generated
// ids) so that two runs on equal fixtures give the same text.
type gstep struct {
	Kind         string           // "begin", "query", "next", "commit", ... (the faults step kinds)
	SQL          string           // whitespace collapsed
	Args         int              // number of arguments
	Columns      []string         // query: the result columns
	Rows         [][]driver.Value // query: every row its rows returned
	RowsAffected int64            // exec: rows affected; -1 unknown
	// Closed (prepare, set by expectsOnly): the clean run closed the
	// statement (a later stmt-close step with its SQL), so sqlmock expects
	// it closed.
	Closed bool
}

// expects reports whether a sqlmock expectation stands for the step.
func (s gstep) expects() bool {
	switch s.Kind {
	case "begin", "query", "exec", "commit", "rollback", "prepare":
		return true
	}
	return false
}

// uuidRE matches a UUID in canonical form anywhere in a string.
var uuidRE = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// placeholderUUID returns the n-th (1-based) placeholder UUID; a valid
// version-4 form so that code checking UUIDs accepts it.
func placeholderUUID(n int) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
}

// normaliser replaces every UUID with a placeholder numbered in order of first
// appearance and every time with GoldenTime.
type normaliser struct{ ids map[string]string }

func newNormaliser() *normaliser { return &normaliser{ids: map[string]string{}} }

func (n *normaliser) text(s string) string {
	return uuidRE.ReplaceAllStringFunc(s, func(u string) string {
		u = strings.ToLower(u)
		p, ok := n.ids[u]
		if !ok {
			p = placeholderUUID(len(n.ids) + 1)
			n.ids[u] = p
		}
		return p
	})
}

func (n *normaliser) value(v driver.Value) driver.Value {
	switch x := v.(type) {
	case string:
		return n.text(x)
	case []byte:
		return []byte(n.text(string(x)))
	case time.Time:
		return GoldenTime
	default:
		return v
	}
}

func (n *normaliser) steps(in []gstep) []gstep {
	out := make([]gstep, len(in))
	for i, s := range in {
		s.SQL = n.text(oneLine(s.SQL, 1<<20))
		if s.Rows != nil {
			rows := make([][]driver.Value, len(s.Rows))
			for j, r := range s.Rows {
				nr := make([]driver.Value, len(r))
				for k, v := range r {
					nr[k] = n.value(v)
				}
				rows[j] = nr
			}
			s.Rows = rows
		}
		out[i] = s
	}
	return out
}

// formatValue writes one driver value as a typed token.
func formatValue(v driver.Value) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return "int:" + strconv.FormatInt(x, 10)
	case float64:
		return "float:" + strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return "time:" + x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return "bytes:" + strconv.Quote(string(x))
	case string:
		return "text:" + strconv.Quote(x)
	default:
		return "text:" + strconv.Quote(fmt.Sprint(x))
	}
}

// parseValues reads the tokens formatValue writes, separated by spaces.
func parseValues(s string) ([]driver.Value, error) {
	var out []driver.Value
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		var tok string
		if i := strings.IndexByte(s, ':'); i > 0 && (s[:i] == "text" || s[:i] == "bytes") {
			q, err := strconv.QuotedPrefix(s[i+1:])
			if err != nil {
				return nil, fmt.Errorf("value %.20q: %w", s, err)
			}
			u, _ := strconv.Unquote(q)
			if s[:i] == "text" {
				out = append(out, u)
			} else {
				out = append(out, []byte(u))
			}
			s = s[i+1+len(q):]
			continue
		}
		if i := strings.IndexByte(s, ' '); i >= 0 {
			tok, s = s[:i], s[i:]
		} else {
			tok, s = s, ""
		}
		v, err := parseToken(tok)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func parseToken(tok string) (driver.Value, error) {
	switch {
	case tok == "null":
		return nil, nil
	case tok == "true", tok == "false":
		return tok == "true", nil
	case strings.HasPrefix(tok, "int:"):
		return strconv.ParseInt(tok[4:], 10, 64)
	case strings.HasPrefix(tok, "float:"):
		return strconv.ParseFloat(tok[6:], 64)
	case strings.HasPrefix(tok, "time:"):
		return time.Parse(time.RFC3339Nano, tok[5:])
	}
	return nil, fmt.Errorf("value %q: want null, true, false, int:, float:, time:, text:\"\" or bytes:\"\"", tok)
}

// formatGolden writes a golden trace: a comment header (ending with how to
// refresh the file, when refresh is not empty), then one "step N kind" line
// per step (N from 1, as plans count) with its SQL, columns, rows and rows
// affected indented below.
func formatGolden(op string, steps []gstep, refresh string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: the steps of one clean run on PostgreSQL, normalised (times, UUIDs).\n", op)
	b.WriteString("# The sqlmock matrix builds its expectations from this file.\n")
	if refresh != "" {
		fmt.Fprintf(&b, "# Refresh: %s\n", refresh)
	}
	for i, s := range steps {
		fmt.Fprintf(&b, "step %d %s", i+1, s.Kind)
		if s.Args > 0 {
			fmt.Fprintf(&b, " args=%d", s.Args)
		}
		if s.Kind == "exec" || s.Kind == "stmt-exec" {
			fmt.Fprintf(&b, " affected=%d", s.RowsAffected)
		}
		b.WriteByte('\n')
		if s.SQL != "" && s.Kind != "next" && s.Kind != "rows-close" {
			fmt.Fprintf(&b, "  sql: %s\n", s.SQL)
		}
		if s.Columns != nil && (s.Kind == "query" || s.Kind == "stmt-query") {
			fmt.Fprintf(&b, "  columns: %s\n", strings.Join(s.Columns, " "))
			for _, r := range s.Rows {
				toks := make([]string, len(r))
				for k, v := range r {
					toks[k] = formatValue(v)
				}
				fmt.Fprintf(&b, "  row: %s\n", strings.Join(toks, " "))
			}
		}
	}
	return b.String()
}

// parseGolden reads what formatGolden writes.
func parseGolden(text string) ([]gstep, error) {
	var steps []gstep
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "step ") {
			f := strings.Fields(l)
			if len(f) < 3 {
				return nil, fmt.Errorf("%w: line %d: want \"step N kind\", got %q", ErrGolden, line, l)
			}
			if n, err := strconv.Atoi(f[1]); err != nil || n != len(steps)+1 {
				return nil, fmt.Errorf("%w: line %d: want step %d, got %q", ErrGolden, line, len(steps)+1, l)
			}
			s := gstep{Kind: f[2], RowsAffected: -1}
			for _, kv := range f[3:] {
				k, v, _ := strings.Cut(kv, "=")
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%w: line %d: %q: %v", ErrGolden, line, kv, err)
				}
				switch k {
				case "args":
					s.Args = int(n)
				case "affected":
					s.RowsAffected = n
				default:
					return nil, fmt.Errorf("%w: line %d: unknown attribute %q", ErrGolden, line, kv)
				}
			}
			steps = append(steps, s)
			continue
		}
		if len(steps) == 0 {
			return nil, fmt.Errorf("%w: line %d: %q before the first step", ErrGolden, line, l)
		}
		s := &steps[len(steps)-1]
		key, val, ok := strings.Cut(strings.TrimSpace(l), ": ")
		if !ok {
			key, val = strings.TrimSuffix(strings.TrimSpace(l), ":"), ""
		}
		switch key {
		case "sql":
			s.SQL = val
		case "columns":
			s.Columns = strings.Fields(val)
		case "row":
			r, err := parseValues(val)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrGolden, line, err)
			}
			if len(r) != len(s.Columns) {
				return nil, fmt.Errorf("%w: line %d: %d values for %d columns", ErrGolden, line, len(r), len(s.Columns))
			}
			s.Rows = append(s.Rows, r)
		default:
			return nil, fmt.Errorf("%w: line %d: unknown key %q", ErrGolden, line, key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGolden, err)
	}
	return steps, nil
}

// loadGolden reads "<op>.trace" from fsys.
func loadGolden(fsys fs.FS, op string) ([]gstep, error) {
	b, err := fs.ReadFile(fsys, op+".trace")
	if err != nil {
		return nil, fmt.Errorf("%w: read %s.trace from Config.Golden (%s): %w; "+
			"record it on PostgreSQL with scenarios.RecordGolden, or from a test of your package with "+
			"scenarios.GoldenTests(t, dir, update, cfg, ops...) run with update set (e.g. go test -run TestGolden -update), "+
			"and pass os.DirFS(dir) or an embedded copy as Config.Golden",
			ErrGolden, op, describeFS(fsys), err)
	}
	steps, err := parseGolden(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s.trace: %w", op, err)
	}
	return steps, nil
}

// describeFS names a file system for an error message: its type, and its
// root when it is a directory (os.DirFS).
func describeFS(fsys fs.FS) string {
	if v := reflect.ValueOf(fsys); v.Kind() == reflect.String {
		return fmt.Sprintf("%T %q", fsys, v.String())
	}
	return fmt.Sprintf("%T", fsys)
}

// goldenSteps converts a recorded trace to golden steps, normalised.
func goldenSteps(tr faults.Trace) []gstep {
	out := make([]gstep, len(tr))
	for i, s := range tr {
		out[i] = gstep{Kind: s.Kind.String(), SQL: s.SQL, Args: s.Args, RowsAffected: s.RowsAffected}
		if s.Kind == faults.StepQuery {
			out[i].Columns = s.Columns
			out[i].Rows = s.Rows
		}
	}
	return newNormaliser().steps(out)
}

// GoldenCalls returns the calls of op's golden trace ("<op>.trace" in fsys) that the sqlmock
// matrix expects — begin, query, exec, commit, rollback, prepare — in order, each as its
// kind, or "kind: SQL" with the SQL's whitespace collapsed: what a sqlmock model of op
// written by hand must match to state the same fact as the trace.
func GoldenCalls(fsys fs.FS, op string) ([]string, error) {
	steps, err := loadGolden(fsys, op)
	if err != nil {
		return nil, err
	}
	var calls []string
	for _, s := range steps {
		switch {
		case !s.expects():
		case s.SQL == "":
			calls = append(calls, s.Kind)
		default:
			calls = append(calls, s.Kind+": "+s.SQL)
		}
	}
	return calls, nil
}

// RecordGolden runs op on PostgreSQL with no fault armed and returns its
// golden trace: the text of the file "<operation>.trace" the Sqlmock backend
// reads from Config.Golden, from which it builds the case's expectations and
// the rows every query returns. cfg is a Postgres configuration (DSN or
// Connector, and DB; Backend may be left zero). An operation that fails with
// no fault armed has no golden trace: that is an error.
func RecordGolden(ctx context.Context, cfg Config, op Operation) (string, error) {
	return recordGolden(ctx, cfg, op, "")
}

func recordGolden(ctx context.Context, cfg Config, op Operation, refresh string) (string, error) {
	if cfg.Backend == 0 {
		cfg.Backend = Postgres
	}
	if cfg.Backend != Postgres {
		return "", fmt.Errorf("scenarios: record golden trace of %s: backend %s: want %s: %w", op.Name, cfg.Backend, Postgres, ErrConfig)
	}
	if op.RunPgx != nil {
		// a trace recorded on the wire has no rows to replay, and sqlmock
		// cannot run pgx code anyway
		return "", fmt.Errorf("scenarios: record golden trace of %s: a RunPgx operation has no golden trace (golden traces feed the sqlmock matrix, which pgx code does not go through): %w",
			op.Name, ErrConfig)
	}
	r, err := NewRunner(ctx, cfg, op)
	if err != nil {
		return "", fmt.Errorf("scenarios: record golden trace of %s: %w", op.Name, err)
	}
	defer func() { _ = r.Close() }()
	if err := r.Broken(); err != nil {
		return "", fmt.Errorf("scenarios: record golden trace of %s: the operation fails with no fault armed: %w", op.Name, err)
	}
	return formatGolden(op.Name, goldenSteps(r.clean), refresh), nil
}

// GoldenTests makes, for each operation, a subtest of t named after it that
// records the operation on PostgreSQL (RecordGolden, cfg as there) and
// compares the trace with the file dir/<operation>.trace: a changed query, a
// new step or different result data fails with a diff. With update set it
// writes the file instead. The usual pattern, in the package whose
// operations these are:
//
//	var update = flag.Bool("update", false, "rewrite the golden traces in testdata")
//
//	func TestGolden(t *testing.T) {
//		cfg := scenarios.Config{DSN: dsn, DB: db} // a migrated PostgreSQL
//		scenarios.GoldenTests(t, "testdata", *update, cfg, myOperations()...)
//	}
//
// then `go test -run TestGolden -update` records them, and the sqlmock
// matrix reads them with Config.Golden: os.DirFS("testdata"), or an embedded
// copy (//go:embed testdata/*.trace, then fs.Sub) for programs.
func GoldenTests(t *testing.T, dir string, update bool, cfg Config, ops ...Operation) {
	t.Helper()
	refresh := goTestCommand(t.Name()) + " -update"
	for _, op := range ops {
		t.Run(op.Name, func(t *testing.T) {
			got, err := recordGolden(t.Context(), cfg, op, refresh)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parseGolden(got); err != nil {
				t.Fatalf("the golden text does not parse back: %v", err)
			}
			path := filepath.Join(dir, op.Name+".trace")
			if update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden trace: %v (record it: %s)", err, refresh)
			}
			if string(want) != got {
				t.Errorf("%s: the recorded trace differs from the golden file (-want +got):\n%s\nIf the change is intended: %s",
					path, diffLines(string(want), got), refresh)
			}
		})
	}
}
