package faults

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// TestPgxCutAfterHidesReply shows that the client never gets the reply to a
// request cut after it was sent, even when it is already reading while the
// request is written (pgconn reads in the background during a slow write, as
// a cut-after's write is). Were the reply handed to that read, the request
// would succeed on a connection the injector then cuts, and the pool would
// hand that connection to the next operation, which would fail with a fault
// it was never charged with.
func TestPgxCutAfterHidesReply(t *testing.T) {
	for _, tt := range []struct{ name, plan string }{
		{"cut-after", "match=exec#1:cut-after"},
		{"ambiguous", "match=commit#1:ambiguous"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inj := NewPgxInjector()
			if err := inj.Arm(MustParsePlan(tt.plan)); err != nil {
				t.Fatal(err)
			}
			sql := "UPDATE t SET a = 1"
			if tt.name == "ambiguous" {
				sql = "COMMIT"
			}
			srv := newReplyConn([]byte("reply"))
			n, readErr, writeErr := readDuringCutAfter(t, inj.wrap(srv), srv, queryMessage(sql))
			if n != 0 || !errors.Is(readErr, ErrWireCut) {
				t.Errorf("the client's read got %d bytes, %v; want 0 bytes and an error wrapping ErrWireCut", n, readErr)
			} else if writeErr != nil {
				t.Errorf("write %q: %v", sql, writeErr)
			}
			if f := inj.Fired(); len(f) != 1 {
				t.Errorf("fired %v, want one firing", f)
			}
		})
	}
}

// readDuringCutAfter writes the startup message on c, starts a client read
// that waits on srv, then writes msg, and returns what the read got and what
// the write of msg returned. When the read got bytes it closes c, freeing a
// cut-after that would still wait for the reply the read took.
func readDuringCutAfter(t *testing.T, c net.Conn, srv *replyConn, msg []byte) (n int, readErr, writeErr error) {
	t.Helper()
	if _, err := c.Write(startupMessage()); err != nil {
		t.Fatalf("write startup: %v", err)
	}
	type result struct {
		n   int
		err error
	}
	read := make(chan result, 1)
	go func() {
		var b [64]byte
		n, err := c.Read(b[:])
		read <- result{n, err}
	}()
	<-srv.entered // the client's read waits before msg is written
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		wrote <- err
	}()
	r := <-read
	if r.n > 0 {
		_ = c.Close()
	}
	return r.n, r.err, <-wrote
}

func startupMessage() []byte {
	body := []byte("user\x00u\x00\x00")
	b := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(b, uint32(8+len(body)))
	binary.BigEndian.PutUint32(b[4:], 3<<16)
	return append(b, body...)
}

func queryMessage(sql string) []byte {
	b := make([]byte, 5, 6+len(sql))
	b[0] = 'Q'
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(sql)+1))
	return append(append(b, sql...), 0)
}

// replyConn is a server end that answers a Query with reply, handing it to
// the read that has waited longest (reads are served in order of arrival).
type replyConn struct {
	net.Conn // unused methods panic
	reply    []byte
	entered  chan struct{} // a read is waiting

	mu      sync.Mutex
	readers []chan []byte
	dl      time.Time
	dlCh    chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func newReplyConn(reply []byte) *replyConn {
	return &replyConn{reply: reply, entered: make(chan struct{}, 8), dlCh: make(chan struct{}), closed: make(chan struct{})}
}

func (c *replyConn) Read(p []byte) (int, error) {
	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.readers = append(c.readers, ch)
	c.mu.Unlock()
	c.entered <- struct{}{}
	for {
		c.mu.Lock()
		dl, changed := c.dl, c.dlCh
		c.mu.Unlock()
		var timeout <-chan time.Time
		if !dl.IsZero() {
			tm := time.NewTimer(time.Until(dl))
			defer tm.Stop()
			timeout = tm.C
		}
		select {
		case b := <-ch:
			return copy(p, b), nil
		case <-c.closed:
			return 0, net.ErrClosed
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		case <-changed:
		}
	}
}

func (c *replyConn) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == 'Q' {
		c.mu.Lock()
		if len(c.readers) > 0 {
			c.readers[0] <- c.reply
			c.readers = c.readers[1:]
		}
		c.mu.Unlock()
	}
	return len(p), nil
}

func (c *replyConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dl = t
	close(c.dlCh)
	c.dlCh = make(chan struct{})
	return nil
}

func (c *replyConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
