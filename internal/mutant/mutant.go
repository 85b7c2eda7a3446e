package mutant

import (
	"context"
	"strconv"
)

// Bug is one planted session bug. The zero value is no bug.
type Bug int

// The planted bugs. Each names the mistake the handlers make while it is on.
const (
	// RollbackMissingOnError: the unit of work returns a failed unit's error
	// without rolling its transaction back.
	RollbackMissingOnError Bug = iota + 1
	// RollbackSkippedOnPanic: a panic inside the unit propagates without a
	// rollback.
	RollbackSkippedOnPanic
	// CommitErrorIgnored: the unit of work reports success although the
	// commit failed.
	CommitErrorIgnored
	// RowsNotClosed: GetMessages checks ownership with a query whose rows are
	// never closed, then runs its next statement on the same busy session.
	RowsNotClosed
	// RowsErrUnchecked: list reads stop at the first rows error and return
	// the partial page as a success.
	RowsErrUnchecked
	// QueryOnPoolInsideUnit: GetThread counts messages on the pool instead of
	// the transaction, taking a second connection while one is held.
	QueryOnPoolInsideUnit
	// TxHeldAcrossTitleGenerator: AutoRename calls the title generator (a
	// slow external call) inside its first transaction and writes there too.
	TxHeldAcrossTitleGenerator
	// GoroutineWithoutRequestContext: AutoRename notifies from a goroutine
	// that outlives the call and ignores the request context.
	GoroutineWithoutRequestContext
	// ConnNeverClosed: the unit of work pins a *sql.Conn and never closes it
	// when the unit fails.
	ConnNeverClosed
	// ContextNotPassed: the unit of work gives the database a context that is
	// never cancelled, so a cancelled request keeps running its statements.
	ContextNotPassed
	// MetadataReadModifyWrite: UpdateThread reads metadata, merges in Go and
	// writes it back, losing concurrent patches.
	MetadataReadModifyWrite
	// SendRetryWithoutClientID: SendMessage ignores the client message id, so
	// a retried send stores a duplicate.
	SendRetryWithoutClientID

	numBugs = iota
)

var names = [...]string{
	RollbackMissingOnError:         "RollbackMissingOnError",
	RollbackSkippedOnPanic:         "RollbackSkippedOnPanic",
	CommitErrorIgnored:             "CommitErrorIgnored",
	RowsNotClosed:                  "RowsNotClosed",
	RowsErrUnchecked:               "RowsErrUnchecked",
	QueryOnPoolInsideUnit:          "QueryOnPoolInsideUnit",
	TxHeldAcrossTitleGenerator:     "TxHeldAcrossTitleGenerator",
	GoroutineWithoutRequestContext: "GoroutineWithoutRequestContext",
	ConnNeverClosed:                "ConnNeverClosed",
	ContextNotPassed:               "ContextNotPassed",
	MetadataReadModifyWrite:        "MetadataReadModifyWrite",
	SendRetryWithoutClientID:       "SendRetryWithoutClientID",
}

// String returns the bug's Go name, e.g. "RollbackMissingOnError".
func (b Bug) String() string {
	if b > 0 && int(b) < len(names) {
		return names[b]
	}
	return "Bug(" + strconv.Itoa(int(b)) + ")"
}

// All returns every planted bug, in declaration order.
func All() []Bug {
	out := make([]Bug, 0, numBugs)
	for b := Bug(1); b <= numBugs; b++ {
		out = append(out, b)
	}
	return out
}

// Parse returns the bug named s (as printed by String).
func Parse(s string) (Bug, bool) {
	for _, b := range All() {
		if b.String() == s {
			return b, true
		}
	}
	return 0, false
}

type ctxKey struct{}

// With returns a context in which the given bugs are planted, in addition to
// any already planted in ctx.
func With(ctx context.Context, bugs ...Bug) context.Context {
	var set uint64
	if prev, ok := ctx.Value(ctxKey{}).(uint64); ok {
		set = prev
	}
	for _, b := range bugs {
		if b > 0 && b <= numBugs {
			set |= 1 << uint(b)
		}
	}
	return context.WithValue(ctx, ctxKey{}, set)
}

// Has reports whether bug b is planted in ctx.
func Has(ctx context.Context, b Bug) bool {
	set, _ := ctx.Value(ctxKey{}).(uint64)
	return b > 0 && set&(1<<uint(b)) != 0
}
