// Package mutate is session-aware mutation testing for any Go package that talks to Postgres
// through database/sql (any driver) or pgx (pgx.Tx, pgx.Conn, pgxpool).
//
// A general mutation tester flips arithmetic; mutate plants the bugs that leak or corrupt a
// database session — a rollback dropped from an error path, rows never closed, a commit error
// ignored, a statement sent to the pool from inside a transaction, FOR UPDATE removed — and
// asks whether the package's tests notice. Sites are found with type information: a Rollback
// on a *sql.Tx or a pgx.Tx is a site, a method that merely happens to be named Rollback is not.
//
// Find loads the packages and returns one Mutant per site and operator; Run applies one mutant
// at a time through the go command's -overlay flag (the mutated file is written to a temporary
// directory; the source tree is never written), runs the tests and classifies each mutant as
// killed (naming the test that failed and the first line of its failure), survived, timed out
// or not covered (no test reaches the package, or the mutant does not build):
//
//	mutants, err := mutate.Find(ctx, []string{"./store"})
//	...
//	rep, err := mutate.Run(ctx, mutants, mutate.WithParallel(2))
//	...
//	rep.WriteText(os.Stdout) // the kill table, then every survivor with its diff
//
// A known bug that no operator makes is written by hand as a Patch — a file, an exact
// snippet and its replacement — and Patched turns patches into mutants that Run treats like
// the operators' ones (operator "patch"). A patch whose snippet no longer occurs exactly once
// is an error, so it cannot drift silently from the code it mutates. Each Result names every
// test that failed (Failed), so a caller can check that the tests meant to catch a bug do.
//
// A mutant no test can catch (an equivalent mutant: the code cannot behave differently) is
// marked at its site with the reason, EquivalentDirective; when it survives it is Equivalent,
// reported with that reason instead of as a gap in the tests.
//
// The report is also written as JSON (WriteJSON, schema SchemaV1), as JUnit XML for CI
// (WriteJUnit: a test case per mutant; a survivor fails with its file:line and diff, a
// timeout is an error, a mutant not covered is skipped with the reason) and as one
// self-contained HTML page in the look of the matrix report (WriteHTML, through
// report.WritePage).
//
// By default Run tests the mutated package and every package of its module whose tests
// import it, directly or not, with go test -count=1 -vet=off (vet would fail some mutants
// before a test runs, hiding whether a test catches them). WithTest replaces that with any
// command; the overlay then reaches it through GOFLAGS, so the command must run the go tool.
//
// Each mutant's tests run in a process session of their own (on Linux): when a mutant times
// out, everything its tests started — a Postgres server in a process group of its own
// included — gets SIGINT, then SIGKILL, so no server outlives the run. A Docker container a
// test started is beyond reach: the test's own cleanup must remove it.
//
// Limits: a mutant is one contiguous textual change made by one operator; SQL is mutated
// only where its text is a string literal or a constant of the package passed to a database
// call; calls through a querier interface (the sqlc DBTX shape) count as database calls, but
// values passed through struct fields or closures are not followed.
package mutate
