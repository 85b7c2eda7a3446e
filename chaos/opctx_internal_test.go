package chaos

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestOpContextPausedClock: the deadline of an operation does not run while a connection
// is being opened, and runs out once it is there.
func TestOpContextPausedClock(t *testing.T) {
	const budget = 20 * time.Millisecond
	tests := []struct {
		name   string
		pauses int // nested pauses (two connections opened at once)
		want   error
		cancel bool
	}{
		{name: "one-connect", pauses: 1, want: context.DeadlineExceeded},
		{name: "two-connects", pauses: 2, want: context.DeadlineExceeded},
		{name: "cancelled", pauses: 1, want: context.Canceled, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, cancel := newOpContext(context.Background(), budget)
			defer cancel()
			for range tt.pauses {
				c.pause()
			}
			// Queued for ten budgets: the clock must not have run out meanwhile.
			queued := time.NewTimer(10 * budget)
			select {
			case <-c.Done():
				t.Fatalf("the deadline ran out while the operation was queued: %v", c.Err())
			case <-queued.C:
			}
			for range tt.pauses {
				c.resume()
			}
			if tt.cancel {
				cancel()
			}
			select {
			case <-c.Done():
			case <-testDeadline(t):
				t.Fatal("the deadline never ran out once the connection was there")
			}
			if err := c.Err(); !errors.Is(err, tt.want) {
				t.Errorf("Err() = %v; want %v", err, tt.want)
			}
			if q := c.queuedFor(); q < 10*budget {
				t.Errorf("queuedFor() = %s; want at least %s", q, 10*budget)
			}
		})
	}
}

// TestOpContextParentEnds: the run ending ends the operation at once, queued or not.
func TestOpContextParentEnds(t *testing.T) {
	parent, stop := context.WithCancel(context.Background())
	c, cancel := newOpContext(parent, time.Hour)
	defer cancel()
	c.pause()
	stop()
	select {
	case <-c.Done():
	case <-testDeadline(t):
		t.Fatal("the operation outlived the run")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("Err() = %v; want context.Canceled", c.Err())
	}
}

// testDeadline is closed at the test's deadline (or in a minute without one).
func testDeadline(t *testing.T) <-chan time.Time {
	d, ok := t.Deadline()
	if !ok {
		d = time.Now().Add(time.Minute)
	}
	tm := time.NewTimer(time.Until(d) - time.Second)
	t.Cleanup(func() { tm.Stop() })
	return tm.C
}
