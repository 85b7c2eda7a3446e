// Package report holds the result of a sessionsafe run (matrix cases, chaos runs and
// violations) and writes it as JSON with a stable schema, as JUnit XML for CI dashboards,
// and as one self-contained HTML file with the operation × step × fault grid.
//
// It also redacts passwords from DSNs and from any text bound for a log or a report.
package report
