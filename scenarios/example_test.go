package scenarios_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing/fstest"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// markPaid is a user's own database code: one UPDATE in one transaction.
func markPaid(ctx context.Context, db *sql.DB, id string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mark paid: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit: sql.ErrTxDone, ignored
	if _, err := tx.ExecContext(ctx, `UPDATE invoices SET paid = true WHERE id = $1`, id); err != nil {
		return fmt.Errorf("mark paid: %w", err)
	}
	return tx.Commit()
}

// Example runs the sqlmock matrix of a user's own operation. Its golden
// trace would be recorded on PostgreSQL once (RecordGolden, or GoldenTests
// with -update) and kept in testdata; here it is written inline.
func Example() {
	golden := fstest.MapFS{"MarkPaid.trace": {Data: []byte(`step 1 reset
step 2 begin
step 3 exec args=1 affected=1
  sql: UPDATE invoices SET paid = true WHERE id = $1
step 4 commit
`)}}
	op := scenarios.Operation{
		Name: "MarkPaid",
		Setup: func(ctx context.Context, db *sql.DB) (scenarios.Fixture, error) {
			return "inv-1", nil // on sqlmock db is nil: placeholders will do
		},
		Run: func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) error {
			return markPaid(ctx, db, fx.(string))
		},
	}
	rep, err := scenarios.Run(context.Background(), scenarios.Config{Backend: scenarios.Sqlmock, Golden: golden}, op)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d cases, %d findings\n", len(rep.Results), len(rep.Findings()))
	fmt.Println(rep.Results[0].Case)
	fmt.Println(rep.Results[len(rep.Results)-1].Case)
	// Output:
	// 30 cases, 0 findings
	// sqlmock/MarkPaid/step-0-clean/clean
	// sqlmock/MarkPaid/step-1-connect/latency=20ms
}

// ExampleExternal shows External outside a matrix case: it just makes the
// call. Inside one, a transaction held open across it is a finding.
func ExampleExternal() {
	err := scenarios.External(context.Background(), "notify", func(ctx context.Context) error {
		fmt.Println("notified")
		return nil
	})
	fmt.Println(err)
	// Output:
	// notified
	// <nil>
}
