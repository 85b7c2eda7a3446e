package report_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"regexp"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/report"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// markPaid is a team's own database code, with a session bug: the commit's error is
// dropped, so the caller is told the invoice is paid when it may not be.
func markPaid(ctx context.Context, db *sql.DB, id string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mark paid: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `UPDATE invoices SET paid = true WHERE id = $1`, id); err != nil {
		return fmt.Errorf("mark paid: %w", err)
	}
	_ = tx.Commit() // the bug
	return nil
}

// ExampleFromMatrix runs the sqlmock matrix of a team's own operation (its golden trace is
// testdata/MarkPaid.trace) and writes the result as JUnit XML for CI. The matrix here tries
// one fault, a plain error at the commit, to keep the output short.
func ExampleFromMatrix() {
	op := scenarios.Operation{
		Name: "MarkPaid",
		Setup: func(ctx context.Context, db *sql.DB) (scenarios.Fixture, error) {
			return "inv-1", nil // on sqlmock db is nil: placeholders will do
		},
		Run: func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) error {
			return markPaid(ctx, db, fx.(string))
		},
	}
	cfg := scenarios.Config{
		Backend: scenarios.Sqlmock,
		Golden:  os.DirFS("testdata"),
		Faults: func(k faults.StepKind) []faults.Fault {
			if k == faults.StepCommit {
				return []faults.Fault{{Kind: faults.KindError}}
			}
			return nil
		},
		Replay: func(c scenarios.Case) string { return "go test ./billing -run 'TestMatrix/" + c.Name() + "'" },
	}
	run, err := scenarios.Run(context.Background(), cfg, op)
	if err != nil {
		fmt.Println(err)
		return
	}
	rep := report.FromMatrix(run)
	fmt.Println(rep.Summary.Cases, "cases,", rep.Summary.Violations, "violation:", rep.Violations[0].Invariant)

	var junit bytes.Buffer
	if err := report.WriteJUnit(&junit, rep); err != nil {
		fmt.Println(err)
		return
	}
	// Times differ from run to run: blank them.
	fmt.Print(regexp.MustCompile(`time="[0-9.]+"`).ReplaceAllString(junit.String(), `time="…"`))
	// Output:
	// 2 cases, 1 violation: error-surfaced
	// <?xml version="1.0" encoding="UTF-8"?>
	// <testsuites name="sessionsafe matrix" tests="2" failures="1" errors="0" skipped="0" time="…">
	//   <testsuite name="matrix.sqlmock" tests="2" failures="1" errors="0" skipped="0" time="…">
	//     <testcase name="MarkPaid/step-0-clean/clean" classname="sessionsafe.matrix.sqlmock" time="…"></testcase>
	//     <testcase name="MarkPaid/step-3-commit/error" classname="sessionsafe.matrix.sqlmock" time="…">
	//       <failure message="error-surfaced: got success (nil error); want the injected failure to reach the caller: step 3 (commit): error -&gt; commit at step 3: faults: injected error" type="error-surfaced">error-surfaced: got success (nil error); want the injected failure to reach the caller: step 3 (commit): error -&gt; commit at step 3: faults: injected error&#xA;replay: go test ./billing -run &#39;TestMatrix/MarkPaid/step-3-commit/error&#39;</failure>
	//     </testcase>
	//   </testsuite>
	// </testsuites>
}
