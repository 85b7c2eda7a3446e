package testkit

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeT records a Fatalf and ends its goroutine, as testing.T does, with a
// deadline of its own.
type fakeT struct {
	deadline time.Time
	fatal    string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) Deadline() (time.Time, bool) { return f.deadline, !f.deadline.IsZero() }

// run runs fn with f on a goroutine of its own (Fatalf ends it).
func (f *fakeT) run(fn func(t TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
}

func TestEventually(t *testing.T) {
	tests := []struct {
		name      string
		holdAfter int64 // the condition holds from this call on; -1: never
		wantFatal string
	}{
		{"holds-at-once", 0, ""},
		{"holds-later", 5, ""},
		{"never-holds", -1, "for the thing to happen; it never happened"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeT{deadline: time.Now().Add(300 * time.Millisecond)}
			var calls atomic.Int64
			f.run(func(t TB) {
				Eventually(t, func() bool { return tt.holdAfter >= 0 && calls.Add(1) > tt.holdAfter }, "the thing to happen")
			})
			if tt.wantFatal == "" && f.fatal != "" {
				t.Fatalf("Eventually failed: %s; want it to pass", f.fatal)
			}
			if tt.wantFatal != "" && !strings.Contains(f.fatal, tt.wantFatal) {
				t.Fatalf("Eventually failure: got %q; want it to contain %q", f.fatal, tt.wantFatal)
			}
		})
	}
}

func TestEventuallyNilReportsLastError(t *testing.T) {
	f := &fakeT{deadline: time.Now().Add(200 * time.Millisecond)}
	start := time.Now()
	f.run(func(t TB) {
		EventuallyNil(t, func() error { return errors.New("2 connections in use") }, "the pool to be idle")
	})
	if !strings.Contains(f.fatal, "for the pool to be idle: 2 connections in use") {
		t.Errorf("failure: got %q; want what was waited for and the last error", f.fatal)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("gave up after %v; want it to honour the test's deadline (200ms away)", took)
	}
}

func TestDeadline(t *testing.T) {
	if got := time.Until(Deadline(struct{}{})); got > MaxWait || got < MaxWait-time.Second {
		t.Errorf("with no test deadline: %v from now; want MaxWait (%v)", got, MaxWait)
	}
	if got := time.Until(Within(struct{}{}, time.Minute)); got > time.Minute || got < time.Minute-time.Second {
		t.Errorf("Within a minute, with no test deadline: %v from now; want a minute", got)
	}
	near := time.Now().Add(2 * time.Second)
	if got := Within(&fakeT{deadline: near}, time.Minute); !got.Before(near) {
		t.Errorf("Within a minute, with a test deadline 2s away: got %v; want before it", time.Until(got))
	}
	if got := Deadline(&fakeT{deadline: near}); !got.Before(near) {
		t.Errorf("with a test deadline 2s away: got %v; want before it (a margin to report)", time.Until(got))
	}
}

func TestFanOut(t *testing.T) {
	var running, most atomic.Int64
	release := make(chan struct{})
	go func() {
		// Let all of them in before any leaves: they must run at once.
		Poll(time.Now().Add(MaxWait), func() error {
			if running.Load() < 4 {
				return errNotYet
			}
			return nil
		})
		close(release)
	}()
	errs := FanOut(4, func(i int) error {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		if i == 2 {
			return errors.New("two")
		}
		return nil
	})
	if most.Load() != 4 {
		t.Errorf("at most %d ran at once; want 4", most.Load())
	}
	for i, err := range errs {
		if (i == 2) != (err != nil) {
			t.Errorf("errs[%d] = %v; want an error only at index 2", i, err)
		}
	}
}
