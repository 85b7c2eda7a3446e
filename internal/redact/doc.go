// Package redact hides passwords: in a DSN (URL or keyword/value form), in free text that
// may echo one (an error, a log line, a command line), and by value once a DSN's password
// is known. It is the one redactor of the module: pgtest exports it as [pgtest.RedactDSN]
// and the reports run every free-text field through [Text]. It imports nothing but the
// standard library, so any package may use it.
//
// [pgtest.RedactDSN]: https://pkg.go.dev/github.com/sessionsafe/sessionsafe/pgtest#RedactDSN
package redact
