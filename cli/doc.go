// Package cli is the sessionsafe command line as a library, run by [Main] on one or more
// [Catalog]s — anyone's operations, database/sql or pgx: the step × fault matrix, a
// concurrent chaos run against real Postgres and/or sqlmock, the replay of one case or one
// chaos seed, and a catalog's HTTP API as a real server with faults armed. A program of
// one's own is one line:
//
//	func main() { os.Exit(cli.Main(myCatalog)) }
//
// With several catalogs, -catalog NAME picks one (the first by default).
//
// Usage:
//
//	sessionsafe matrix [-catalog NAME] [-backend sqlmock|postgres|both] [-shard i/n] [-run regexp] [-parallel n] [report flags]
//	sessionsafe chaos  [-seed N] [-duration d] [-ops N] [-workers N] [-backend ...] [-provider ...] [-dsn DSN] [report flags]
//	sessionsafe replay -case NAME | -seed N [chaos flags]
//	sessionsafe serve  [-addr :8080] [-provider ...] [-dsn DSN] [-fault-rate r | -plan PLAN]
//	sessionsafe summary report.json...
//	sessionsafe mutate [-list] [-test "go test ./pkg"] [-operators a,b] [-shard i/n] [-parallel N] [-timeout d] [-report-json FILE] [packages]
//
// Report flags: -report-json FILE, -report-junit FILE, -report-html FILE, or -report-dir DIR
// for all three (report.json, junit.xml, report.html).
//
// Exit codes: 0 clean; 1 a violation was found (a session leaked, an invariant broke);
// 2 a usage or setup error, a selection that matches no case, or a run interrupted (Ctrl-C)
// before it completed, violations found or not — its partial report is still written, and
// says it is partial; 3 a replay that ran to the end without a violation ("NOT REPRODUCED:
// replay did not reproduce the violation") — a replay is asked for to see a violation
// again, so its passing is not a clean run either. Every bad flag or DSN gets a one-line error naming it, and DSN
// passwords never appear in output or reports.
//
// serve listens with the catalog's HTTP API (Catalog.Handler) plus
// GET /debug/sessions (JSON: pool stats, what is held now with where it was acquired, server
// and long-transaction findings, the faults fired) and POST /debug/faults (the body is a
// fault plan, armed from then on). SIGTERM or Ctrl-C drains the requests, checks that nothing
// is left held, and exits 1 if something is.
//
// mutate answers "would our checks catch this session bug?": it plants the bug as a source
// mutant of the code (go's -overlay; the tree is never written) and runs the tests against it.
package cli
