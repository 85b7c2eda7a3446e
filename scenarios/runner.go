package scenarios

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"
)

// ErrConfig is wrapped by NewRunner and Run for a configuration that cannot run.
var ErrConfig = errors.New("scenarios: bad config")

// Fixture is what an Operation's Setup prepares for one case and hands to its
// Run and State: ids, inputs, anything the operation needs.
type Fixture any

// Operation is one piece of database code the matrix puts through every fault
// at every step. Nothing in it is specific to the thread handlers.
type Operation struct {
	// Name names the operation in case names and golden files
	// ("UpdateThread"); letters, digits, '-' and '_' only.
	Name string
	// Setup prepares fresh state for one case on a plain (un-instrumented)
	// pool and returns what Run and State need. On the Sqlmock backend db is
	// nil: return placeholder values (the rows Run reads come from the golden
	// trace).
	Setup func(ctx context.Context, db *sql.DB) (Fixture, error)
	// Run is the code under test; db is the instrumented pool of the case.
	Run func(ctx context.Context, db *sql.DB, fx Fixture) error
	// State reads back, on the plain pool, the state Run touches, normalised
	// so that two runs on equal fixtures read the same string (no
	// timestamps, no generated ids). Nil: the operation writes nothing, and
	// only the leak and error invariants are checked.
	State func(ctx context.Context, db *sql.DB, fx Fixture) (string, error)
	// Retries reports whether Run retries err by itself, so that one such
	// fault must end in success. Nil: Run retries nothing.
	Retries func(err error) bool
}

// Config says where and how the matrix runs.
type Config struct {
	// Backend is Sqlmock or Postgres.
	Backend Backend

	// DSN (Postgres) opens the instrumented pools with pgx stdlib; Connector,
	// if set, is used instead. Each case gets its own instrumented pool
	// state, warmed before the fault is armed.
	DSN       string
	Connector driver.Connector
	// DB (Postgres) is the plain pool fixtures are set up and state is read
	// on.
	DB *sql.DB
	// Admin and AppName (Postgres) enable the server check: no backend of
	// AppName idle in transaction, aborted or active, no lock held by one.
	Admin   *sql.DB
	AppName string

	// Golden (Sqlmock) holds "<operation>.trace" files; nil: the catalog's
	// embedded testdata.
	Golden fs.FS

	// Timeout bounds each case; a case still running then is a finding with
	// the goroutine dump. Zero: 10s.
	Timeout time.Duration
	// Disconnect plays a client that goes away: only the fault "cancel" is
	// armed at each step, and the error need not reach the caller.
	Disconnect bool
	// Faults, if set, replaces the faults tried at a step: given the step's
	// kind (e.g. "commit"), it returns fault strings in the plan language
	// (e.g. "pgerr=40001"). Nil: faults.Applicable for the backend.
	Faults func(stepKind string) []string
	// Only, if set, keeps the cases it returns true for.
	Only func(Case) bool
	// Replay returns the command that replays one case; nil: the go test
	// command of RunTests, or none outside a test.
	Replay func(Case) string
	// NoGoroutineCheck turns the goroutine check off (for runs that share
	// the process with other goroutines, e.g. parallel tests).
	NoGoroutineCheck bool
}

// Runner runs the matrix of one operation on one backend. Create it with
// NewRunner; it is not safe for concurrent use (cases run one at a time, since
// the goroutine and server checks look at the whole process and session).
type Runner struct {
	cfg Config
	op  Operation
}

// NewRunner checks the configuration and records one clean run of op: its
// trace and its before and after states.
func NewRunner(ctx context.Context, cfg Config, op Operation) (*Runner, error) {
	return nil, fmt.Errorf("scenarios: new runner for %s: %w", op.Name, errors.ErrUnsupported)
}

// Cases returns every case of the matrix: one per step of the clean trace ×
// per fault applicable there, filtered by Config.Only.
func (r *Runner) Cases() []Case { return nil }

// Trace returns the clean run's trace, readable (one step a line).
func (r *Runner) Trace() string { return "" }

// RunCase reruns the operation on fresh state with the case's fault armed and
// checks every invariant.
func (r *Runner) RunCase(ctx context.Context, c Case) Result {
	return Result{Case: c}
}

// Close releases what the runner holds (its instrumented pool, the sqlmock).
func (r *Runner) Close() error { return nil }

// Run runs the whole matrix of each operation on cfg.Backend and reports every
// case. The error is for a matrix that could not run (setup, clean run);
// broken invariants are in the Report.
func Run(ctx context.Context, cfg Config, ops ...Operation) (Report, error) {
	start := time.Now()
	rep := Report{Backend: cfg.Backend}
	for _, op := range ops {
		r, err := NewRunner(ctx, cfg, op)
		if err != nil {
			return rep, err
		}
		for _, c := range r.Cases() {
			rep.Results = append(rep.Results, r.RunCase(ctx, c))
		}
		if err := r.Close(); err != nil {
			return rep, err
		}
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// RunTests runs the matrix of each operation as subtests of t named
// "operation/step-N-kind/fault"; a broken invariant fails the subtest with the
// finding's message and the go test command that replays it.
func RunTests(t *testing.T, cfg Config, ops ...Operation) {
	t.Helper()
	for _, op := range ops {
		t.Run(op.Name, func(t *testing.T) {
			r, err := NewRunner(t.Context(), cfg, op)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			for _, c := range r.Cases() {
				t.Run(c.Name()[len(op.Name)+1:], func(t *testing.T) {
					res := r.RunCase(t.Context(), c)
					for _, f := range res.Findings {
						t.Error(f.Error())
					}
				})
			}
		})
	}
}
