package handlers

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound is returned when a thread is missing, archived or owned by
// another user: the three cases are indistinguishable on purpose.
var ErrNotFound = errors.New("handlers: thread not found")

// ErrConflict is returned when a write conflicts with the stored state: a
// constraint violation, or a thread with no user message to auto-rename from.
var ErrConflict = errors.New("handlers: conflict")

// errNoUserMessage is the conflict of AutoRename on a thread with no user
// message.
var errNoUserMessage = fmt.Errorf("%w: the thread has no user message to name it from", ErrConflict)

// ValidationError reports invalid input, found before any database call.
// The handlers return it as a *ValidationError; match it with errors.As.
type ValidationError struct {
	Field  string // the input field, e.g. "title", "metadata", "limit"
	Reason string // what is wrong with it
}

// Error returns "handlers: invalid <field>: <reason>".
func (e ValidationError) Error() string {
	return "handlers: invalid " + e.Field + ": " + e.Reason
}

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }

// IsRetryable reports whether err is a transient database failure that a
// caller may retry as a whole: serialization failure, deadlock, lock or
// statement timeout, an administrator shutdown, too many connections, a lost
// connection (SQLSTATE class 08, driver.ErrBadConn) or any error pgconn deems
// safe to retry. The HTTP API answers these with 503.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03":
			return true
		}
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "53")
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// isSerialization reports whether the whole unit of work should be retried.
func isSerialization(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// isConstraint reports a constraint violation (SQLSTATE class 23).
func isConstraint(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "23")
}
