package mutate_test

import (
	"context"
	"fmt"
	"log"

	"github.com/sessionsafe/sessionsafe/mutate"
)

// Find lists the session bugs it can plant in a package: here a small account store on
// database/sql (testdata/src/store).
func ExampleFind() {
	ms, err := mutate.Find(context.Background(), []string{"./testdata/src/store"})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range ms {
		fmt.Println(m.Operator, m.Pos())
	}
	fmt.Print(ms[1].Diff)
	// Output:
	// context-background mutate/testdata/src/store/store.go:15
	// drop-deferred-rollback mutate/testdata/src/store/store.go:19
	// context-background mutate/testdata/src/store/store.go:20
	// tx-call-on-pool mutate/testdata/src/store/store.go:20
	// context-background mutate/testdata/src/store/store.go:23
	// tx-call-on-pool mutate/testdata/src/store/store.go:23
	// ignore-commit-error mutate/testdata/src/store/store.go:26
	// context-background mutate/testdata/src/store/store.go:34
	// drop-rows-close mutate/testdata/src/store/store.go:38
	// drop-rows-err-check mutate/testdata/src/store/store.go:48
	// --- a/mutate/testdata/src/store/store.go
	// +++ b/mutate/testdata/src/store/store.go
	// @@ -17,5 +17,5 @@
	//  		return fmt.Errorf("begin: %w", err)
	//  	}
	// -	defer tx.Rollback()
	// +	_ = tx
	//  	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance - $1 WHERE id = $2`, amount, from); err != nil {
	//  		return fmt.Errorf("debit: %w", err)
}
