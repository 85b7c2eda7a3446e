package faults

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// cutConn is what the Wire's and the PgxInjector's connections share: the
// write deadline a held write honours, the close that wakes it, the cut, and
// the cut-after that forwards a request, waits for the server's reply
// without handing it to the client, then cuts. The wrapper embeds it and
// writes through c.Conn; create it with newCutConn.
type cutConn struct {
	net.Conn
	op string // names the injector in errors: "faults: wire", "faults: pgx injector"

	dmu  sync.Mutex
	wdl  time.Time     // write deadline; zero: none
	dlCh chan struct{} // closed and replaced when the write deadline changes

	closeOnce sync.Once
	closed    chan struct{}
	cut       atomic.Bool
	cutting   atomic.Bool // a cut-after is under way: the client reads nothing more
	replied   atomic.Bool // the client's read met the reply of a cut-after
}

func (c *cutConn) init(conn net.Conn, op string) {
	c.Conn, c.op = conn, op
	c.closed, c.dlCh = make(chan struct{}), make(chan struct{})
}

// cutAfter forwards req, waits for the server's reply when it answers at
// once (awaitReply), and cuts the connection. From the moment it starts the
// client reads nothing: pgconn reads in the background while a write is slow
// (as this one is, awaiting the reply), and were the reply handed to it the
// request would succeed on a connection then cut, which a pool keeps for the
// next operation; that operation would fail with ErrWireCut and no fault of
// its own. It returns how much of req was written and the write's error.
func (c *cutConn) cutAfter(req []byte, answered bool) (int, error) {
	c.cutting.Store(true)
	n, err := c.Conn.Write(req)
	if err == nil && answered {
		c.awaitReply()
	}
	c.cutNow()
	return n, err
}

// awaitReply waits until the server's reply to the request just forwarded
// starts arriving (the bytes are read and discarded: the client never sees
// them), until the connection's deadline (pgx sets it when the call's
// context ends) or until the server closes the connection — as long as the
// client itself would wait for that reply: no fixed window, which a loaded
// server could outlast, cutting a request it never processed. Closing the
// socket at once would race the server: with the reply unread, the kernel
// may reset the connection and the server drop a request it had not yet
// processed. After the first byte of the reply the server has provably
// processed it (it flushes at the end of a request, after an autocommit
// statement committed). A client's read that meets the reply first (Read)
// drops it and ends the wait.
func (c *cutConn) awaitReply() {
	dl, _ := c.writeDeadline()
	if err := c.Conn.SetReadDeadline(dl); err != nil {
		return
	}
	if c.replied.Load() {
		return // the client's read met it (and dropped it) first
	}
	var b [512]byte
	_, _ = c.Conn.Read(b[:])
}

// Read passes through; once a cut-after is under way, or after a cut, it
// reports ErrWireCut. What it read of a cut-after's reply is dropped (and
// the wait for that reply ends): the client never sees it.
func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.cutting.Load() {
		if n > 0 {
			c.replied.Store(true)
			_ = c.Conn.SetReadDeadline(time.Now())
		}
		return 0, fmt.Errorf("%s: read: %w", c.op, ErrWireCut)
	}
	if err != nil && c.cut.Load() {
		return n, fmt.Errorf("%s: read: %w", c.op, ErrWireCut)
	}
	return n, err
}

// wait blocks for d (until released when d is negative) or until release is
// closed (nil: never), the write deadline passes (os.ErrDeadlineExceeded) or
// the connection is closed (net.ErrClosed).
func (c *cutConn) wait(release <-chan struct{}, d time.Duration) error {
	var done <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		done = t.C
	}
	for {
		dl, changed := c.writeDeadline()
		var timeout <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			left := time.Until(dl)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			t = time.NewTimer(left)
			timeout = t.C
		}
		stop := func() {
			if t != nil {
				t.Stop()
			}
		}
		select {
		case <-done:
			stop()
			return nil
		case <-release:
			stop()
			return nil
		case <-c.closed:
			stop()
			return net.ErrClosed
		case <-timeout:
			return os.ErrDeadlineExceeded
		case <-changed:
			stop()
		}
	}
}

func (c *cutConn) markClosed() { c.closeOnce.Do(func() { close(c.closed) }) }

// cutNow closes the connection as a fault: reads and writes report
// ErrWireCut from now on.
func (c *cutConn) cutNow() {
	c.cut.Store(true)
	c.markClosed()
	_ = c.Conn.Close() // the cut is the point; a close error changes nothing
}

// Close closes the connection and wakes a held write; closing a cut
// connection is not an error.
func (c *cutConn) Close() error {
	c.markClosed()
	err := c.Conn.Close()
	if c.cut.Load() {
		return nil
	}
	return err
}

// writeDeadline returns the write deadline and the channel closed when it
// changes.
func (c *cutConn) writeDeadline() (time.Time, <-chan struct{}) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	return c.wdl, c.dlCh
}

func (c *cutConn) setWriteDeadline(t time.Time) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wdl = t
	close(c.dlCh)
	c.dlCh = make(chan struct{})
}

// SetDeadline sets the underlying deadlines and wakes a held write to honour
// it.
func (c *cutConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	c.setWriteDeadline(t)
	return err
}

// SetWriteDeadline sets the underlying write deadline and wakes a held write
// to honour it.
func (c *cutConn) SetWriteDeadline(t time.Time) error {
	err := c.Conn.SetWriteDeadline(t)
	c.setWriteDeadline(t)
	return err
}
