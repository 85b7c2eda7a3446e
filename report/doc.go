// Package report holds the result of a sessionsafe run (matrix cases, chaos runs and
// violations) and writes it as JSON with a stable schema, as JUnit XML for CI dashboards,
// and as one self-contained HTML file with the operation × step × fault grid.
//
// Every free-text field is run through internal/redact before it is written, so no DSN
// password reaches a report.
package report
