package leakcheck

import (
	"errors"
	"fmt"
	"strings"
)

// ErrLeak is matched (errors.Is) by every error that reports a finding.
var ErrLeak = errors.New("leakcheck: leak found")

// ErrOption is matched by the error of a bad option or a bad combination.
var ErrOption = errors.New("leakcheck: bad option")

// Check names one kind of check.
type Check string

// The checks, as named in findings.
const (
	CheckPool        Check = "pool"
	CheckGoroutines  Check = "goroutines"
	CheckServer      Check = "server"
	CheckSession     Check = "session"
	CheckLongTx      Check = "long-transaction"
	CheckPreparedTxn Check = "prepared-transaction"
)

// Finding is one thing left behind.
type Finding struct {
	Check   Check  // which check found it
	Summary string // one line: what is left
	Detail  string // where it came from, indented lines; may be empty
}

// String returns the finding as it appears in an error.
func (f Finding) String() string {
	s := "[" + string(f.Check) + "] " + f.Summary
	if f.Detail != "" {
		s += "\n" + strings.TrimRight(f.Detail, "\n")
	}
	return s
}

// Error is the error of a check that found something: every finding, one
// after the other. It matches ErrLeak.
type Error struct {
	Findings []Finding
}

// Error lists every finding.
func (e *Error) Error() string {
	var b strings.Builder
	n := len(e.Findings)
	if n == 1 {
		b.WriteString("leakcheck: 1 leak found:\n")
	} else {
		fmt.Fprintf(&b, "leakcheck: %d leaks found:\n", n)
	}
	for i, f := range e.Findings {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(f.String())
	}
	return b.String()
}

// Is reports whether target is ErrLeak.
func (e *Error) Is(target error) bool { return target == ErrLeak }

// Has reports whether err holds a finding of check c.
func Has(err error, c Check) bool {
	var le *Error
	if !errors.As(err, &le) {
		return false
	}
	for _, f := range le.Findings {
		if f.Check == c {
			return true
		}
	}
	return false
}

// result joins findings and operational errors into one error, nil if both
// are empty.
func result(findings []Finding, errs []error) error {
	var all []error
	if len(findings) > 0 {
		all = append(all, &Error{Findings: findings})
	}
	all = append(all, errs...)
	if len(all) == 1 {
		return all[0]
	}
	return errors.Join(all...)
}
