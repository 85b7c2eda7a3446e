// Package threadsuite puts the thread service (package handlers) through the
// generic runner of package scenarios: it is the harness's proving ground and
// a worked example of using the runner on one's own database code.
//
// # The catalog
//
// [Catalog] returns the eight handlers operations (ListThreads, CreateThread,
// GetThread, UpdateThread, DeleteThread, AutoRename, GetMessages, SendMessage)
// as scenarios.Operations calling handlers.Service directly, each on a fresh
// [ThreadFixture] (a new user owning two threads); [HTTPCatalog] returns the
// same eight driven through Service.Handler(), for runs with
// scenarios.Config.Disconnect. [Lookup] finds one by name.
//
// Their golden traces, which the sqlmock backend needs, live in
// testdata/<operation>.trace, are embedded for programs ([GoldenFS], passed
// as scenarios.Config.Golden) and are refreshed on PostgreSQL with
//
//	go test ./threadsuite -run '^TestGolden$' -update
//
// # Beyond the matrix
//
//   - The original plan's eleven failing cases, by name (TestOriginal).
//   - Concurrency probes ([Probes], [LookupProbe], [Probe.Run]) on a real
//     PostgreSQL: small pools that expose a second connection taken while one
//     is held, lost updates, message ordering, delete racing send, requests
//     cancelled mid-transaction, external calls inside a transaction.
//   - Focused checks ([Checks], [Check.Run]): matrix cases and probes aimed at
//     the kinds of session bug, all passing on the correct handlers (TestKills).
//   - The mutation proof (TestMutationProof): the handlers' known session bugs
//     ([PlantedBugs]) are source mutants — patches of handlers that package
//     mutate applies through go's -overlay, never writing the tree — and each
//     must fail the checks and original cases its CaughtBy names. Handlers
//     itself carries no planted-bug switch.
//
// A failing matrix case names the command that replays it alone, e.g.
//
//	go test ./threadsuite -run '^TestMatrix$/postgres/UpdateThread/step-7-commit/^pgerr=40001$'
package threadsuite
