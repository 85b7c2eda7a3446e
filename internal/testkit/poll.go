package testkit

import (
	"fmt"
	"time"
)

// MaxWait bounds how long [Eventually] and [EventuallyNil] poll: a condition that should
// hold "soon" and has not after this long will not. A test with a nearer deadline (go test
// -timeout) stops polling earlier, leaving a margin to report.
const MaxWait = 10 * time.Second

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Eventually polls cond, at first every millisecond then backing off to every 50ms, until
// it returns true, and fails t with "waited <d> for <what>" if it never does before the
// deadline: MaxWait from now, or the test's own deadline less a margin when nearer.
func Eventually(t TB, cond func() bool, what string) {
	t.Helper()
	EventuallyNil(t, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}, what)
}

// EventuallyNil polls check as [Eventually] does until it returns nil, and fails t with
// "waited <d> for <what>: <the last error>" if it never does: the error says what was
// still wrong.
func EventuallyNil(t TB, check func() error, what string) {
	t.Helper()
	start := time.Now()
	if err := Poll(Deadline(t), check); err != nil {
		if err == errNotYet {
			t.Fatalf("waited %v for %s; it never happened", time.Since(start).Round(time.Millisecond), what)
		}
		t.Fatalf("waited %v for %s: %v", time.Since(start).Round(time.Millisecond), what, err)
	}
}

// Poll calls check until it returns nil (Poll returns nil) or deadline passes (Poll
// returns check's last error). It checks at least once, and backs off from 1ms to 50ms
// between calls.
func Poll(deadline time.Time, check func() error) error {
	wait := time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		time.Sleep(min(wait, left)) // the interval between checks, not a wait for the condition
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Deadline is when polling on behalf of t must give up: MaxWait from now, or t's own
// deadline (from go test -timeout) less a margin to report, when that is nearer. t need
// only have a Deadline method to be asked.
func Deadline(t any) time.Time { return Within(t, MaxWait) }

// Within is [Deadline] for a wait that may legitimately take longer than MaxWait (a
// Postgres to start, a server to drain): d from now, or t's own deadline less a margin to
// report, when that is nearer.
func Within(t any, d time.Duration) time.Time {
	limit := time.Now().Add(d)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			// Keep a tenth of what is left (at most 5s) to report the failure and clean up.
			dl = dl.Add(-min(time.Until(dl)/10, 5*time.Second))
			if dl.Before(limit) {
				limit = dl
			}
		}
	}
	return limit
}

// errNotYet is what a false condition of Eventually polls as.
var errNotYet = fmt.Errorf("testkit: condition not yet true")
