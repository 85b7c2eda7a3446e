package faults_test

import (
	"fmt"

	"github.com/sessionsafe/sessionsafe/faults"
)

// ExampleTxState plays what Postgres does after an error inside a transaction: the next
// statement fails with 25P02 and the commit rolls the transaction back.
func ExampleTxState() {
	var s faults.TxState
	const conn = 1
	s.After(conn, faults.StepBegin, nil) // BEGIN succeeded
	s.Injected(conn, faults.StepExec)    // an error injected at a statement in it
	fmt.Println(s.Before(conn, faults.StepQuery) == faults.TxFailStatement)
	fmt.Println(s.Before(conn, faults.StepCommit) == faults.TxCommitRollback)
	fmt.Println(s.InTx(conn), s.Aborted(conn)) // the commit ended it
	// Output:
	// true
	// true
	// false false
}
