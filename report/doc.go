// Package report holds the result of a sessionsafe run (matrix cases, chaos runs and
// violations) and writes it as JSON with a stable schema (Schema, "sessionsafe/report/v1"),
// as JUnit XML for CI dashboards, and as one self-contained HTML page with the operation ×
// step × fault grid.
//
// It is for a team's own catalogs as much as for the sessionsafe CLI: FromMatrix turns the
// results of scenarios.Run — any operations, one scenarios.Report per backend — into a
// Report, and Write puts it in the three formats:
//
//	run, err := scenarios.Run(ctx, cfg, ops...)
//	...
//	rep := report.FromMatrix(run)
//	_, err = report.Write(rep, report.InDir("reports/matrix"))
//
// A program that runs cases one at a time (for a progress display, say) builds the same
// report with New, AddResult per case and Finish. Chaos runs are added as ChaosRun and
// Violation values, which take nothing but strings and numbers.
//
// Root causes come first in every format: a violation about something left behind (a
// connection, rows, a transaction, a lock, a goroutine: KindLeak) comes before every
// symptom (KindSymptom), and a symptom names the leaks it may follow from (CausedBy) —
// Finish orders them with RootCausesFirst, classifying by invariant (LeakInvariant) any
// violation whose Kind is not set, and linking by Backend, Source, Scope and Seq.
//
// The page's look — its stylesheet, banner and table classes — is shared with other
// sessionsafe reports through HTMLStyle, so that every page reads alike.
//
// Every free-text field is redacted before it is written, so no DSN password reaches a
// report.
package report
