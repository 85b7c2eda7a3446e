package chaos

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// opContext is the context of one operation: its deadline runs only while the operation is
// not queued for a connection. A worker's connector pauses it for as long as a connection
// is being opened (or waits for a slot of the run's connection budget) and resumes it once
// the connection is there, so the time a busy machine takes to fork and authenticate a
// backend is not charged to the code under test. Err is context.DeadlineExceeded once the
// budget is spent, as with context.WithTimeout. Deadline reports none: the deadline moves.
type opContext struct {
	context.Context // the run's: values, and its cancellation

	done     chan struct{}
	stopWait func() bool

	mu     sync.Mutex
	err    error
	timer  *time.Timer
	left   time.Duration // of the budget, as of since (or while paused)
	since  time.Time     // when the clock last started running
	paused int           // connects in progress
	qsince time.Time     // when the first of them started
	queued time.Duration // time spent paused, in all
}

// newOpContext starts an operation's clock with budget; cancel ends the context (and must be
// called once the operation and its checks are done).
func newOpContext(parent context.Context, budget time.Duration) (*opContext, context.CancelFunc) {
	c := &opContext{Context: parent, done: make(chan struct{}), left: budget, since: time.Now()}
	c.mu.Lock()
	c.timer = time.AfterFunc(budget, c.expire)
	c.stopWait = context.AfterFunc(parent, func() { c.end(context.Cause(parent)) })
	c.mu.Unlock()
	return c, func() { c.end(context.Canceled) }
}

// Deadline reports no deadline: the clock stops while the operation is queued.
func (c *opContext) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done is closed when the budget is spent, the run ends, or the operation is cancelled.
func (c *opContext) Done() <-chan struct{} { return c.done }

// Err says why Done was closed (nil while it is not).
func (c *opContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *opContext) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	if err == nil {
		err = context.Canceled
	}
	c.err = err
	c.timer.Stop()
	if c.paused > 0 {
		c.queued += time.Since(c.qsince)
		c.paused = 0
	}
	close(c.done)
	if c.stopWait != nil {
		c.stopWait() // does not wait for the parent's callback: no deadlock on c.mu
	}
}

// expire is the timer's: it ends the context unless the clock was paused meanwhile (a stale
// firing of a timer Stop could not catch).
func (c *opContext) expire() {
	c.mu.Lock()
	if c.paused > 0 || c.err != nil || time.Since(c.since) < c.left {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.end(context.DeadlineExceeded)
}

// pause stops the clock while a connection is being opened; every pause is followed by a
// resume.
func (c *opContext) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused++
	if c.paused > 1 || c.err != nil {
		return
	}
	now := time.Now()
	c.timer.Stop()
	c.left -= now.Sub(c.since)
	c.qsince = now
}

// resume starts the clock again once the connection is there (or failed).
func (c *opContext) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused == 0 || c.err != nil {
		return
	}
	c.paused--
	if c.paused > 0 {
		return
	}
	now := time.Now()
	c.queued += now.Sub(c.qsince)
	c.since = now
	if c.left < 0 {
		c.left = 0
	}
	c.timer.Reset(c.left)
}

// queuedFor returns the time the operation spent queued for a connection.
func (c *opContext) queuedFor() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queued
	if c.paused > 0 {
		q += time.Since(c.qsince)
	}
	return q
}

// connQueue is what a worker's connections pass through on their way to the driver: the
// clock of the worker's operation under way stops while a connection is being opened, and,
// when the run has more workers than the server has connections for, a connection is opened
// only with a slot of the run's share (slots), given back when it closes. Both are queueing
// behind other workers — a busy machine forking and authenticating backends, the slots of
// other workers' connections — not the code under test running.
type connQueue struct {
	op    *atomic.Pointer[opContext]
	slots chan struct{} // nil: no limit
	stop  <-chan struct{}

	mu     sync.Mutex
	held   map[uint64]bool       // the connections holding a slot
	paused map[uint64]*opContext // the clock each connection being opened stopped
}

// errRunEnded is what opening a connection returns when the run ended while it waited for
// a slot: the operation was cut short, not failed.
var errRunEnded = errors.New("chaos: the run ended while the operation was queued for a connection")

func newConnQueue(op *atomic.Pointer[opContext], slots chan struct{}, stop <-chan struct{}) *connQueue {
	return &connQueue{op: op, slots: slots, stop: stop, held: map[uint64]bool{}, paused: map[uint64]*opContext{}}
}

// hooks returns the drvwrap hooks of the queue, for the connector next to the driver.
func (q *connQueue) hooks() drvwrap.Hooks {
	return drvwrap.Hooks{
		Before: func(ctx context.Context, c *drvwrap.Call) error {
			if c.Op != drvwrap.OpConnect {
				return nil
			}
			if op := q.op.Load(); op != nil {
				op.pause()
				q.mu.Lock()
				q.paused[c.ConnID] = op
				q.mu.Unlock()
			}
			if q.slots == nil {
				return nil
			}
			select {
			case q.slots <- struct{}{}:
			case <-ctx.Done():
				q.resume(c)
				return ctx.Err()
			case <-q.stop:
				q.resume(c)
				return errRunEnded
			}
			q.mu.Lock()
			q.held[c.ConnID] = true
			q.mu.Unlock()
			return nil
		},
		After: func(_ context.Context, c *drvwrap.Call, err error) error {
			switch {
			case c.Op == drvwrap.OpConnect:
				q.resume(c)
				if err != nil {
					q.release(c.ConnID)
				}
			case c.Op == drvwrap.OpClose:
				q.release(c.ConnID)
			}
			return err
		},
	}
}

// resume restarts the clock that opening connection c stopped.
func (q *connQueue) resume(c *drvwrap.Call) {
	q.mu.Lock()
	op := q.paused[c.ConnID]
	delete(q.paused, c.ConnID)
	q.mu.Unlock()
	if op != nil {
		op.resume()
	}
}

// release gives back the slot of connection id, once (a conn may be closed twice: by a fault
// that breaks it, then by database/sql).
func (q *connQueue) release(id uint64) {
	if q.slots == nil {
		return
	}
	q.mu.Lock()
	held := q.held[id]
	delete(q.held, id)
	q.mu.Unlock()
	if held {
		<-q.slots
	}
}
