package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
)

// fakeConn is a net.Conn that records what is written to it; reads block
// until it is closed.
type fakeConn struct {
	mu        sync.Mutex
	out       bytes.Buffer
	closed    chan struct{}
	closeOnce sync.Once
}

func newFakeConn() *fakeConn { return &fakeConn{closed: make(chan struct{})} }

// Read is a server that has its reply ready as soon as anything was
// written to it (one byte at a time), and blocks until Close before that.
func (f *fakeConn) Read(p []byte) (int, error) {
	f.mu.Lock()
	answered := f.out.Len() > 0
	f.mu.Unlock()
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	if answered && len(p) > 0 {
		p[0] = 'Z'
		return 1, nil
	}
	<-f.closed
	return 0, net.ErrClosed
}
func (f *fakeConn) Write(p []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}
func (f *fakeConn) Close() error                     { f.closeOnce.Do(func() { close(f.closed) }); return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func (f *fakeConn) written() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.out.Bytes())
}

func (f *fakeConn) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// encode returns the wire bytes of each message.
func encode(tb testing.TB, msgs ...pgproto3.FrontendMessage) [][]byte {
	tb.Helper()
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := m.Encode(nil)
		if err != nil {
			tb.Fatalf("encode %T: %v", m, err)
		}
		out[i] = b
	}
	return out
}

// session is a canned client session: startup, two simple queries, an
// extended-protocol COMMIT (Parse, Bind, Describe, Execute, Sync), a
// simple-protocol COMMIT and a last query.
func session(tb testing.TB) [][]byte {
	tb.Helper()
	return encode(tb,
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "database": "d"}}, // 0
		&pgproto3.Query{String: "SELECT 1"},                                     // 1
		&pgproto3.Query{String: "INSERT INTO t VALUES (1)"},                     // 2
		&pgproto3.Parse{Name: "stmt_commit", Query: "commit"},                   // 3
		&pgproto3.Bind{DestinationPortal: "", PreparedStatement: "stmt_commit"}, // 4
		&pgproto3.Describe{ObjectType: 'P'},                                     // 5
		&pgproto3.Execute{},                                                     // 6
		&pgproto3.Sync{},                                                        // 7
		&pgproto3.Query{String: " COMMIT ; "},                                   // 8
		&pgproto3.Query{String: "SELECT 2"},                                     // 9
	)
}

// writeAll writes the messages in chunks: "message" (one Write each), "one"
// (a single Write) or "byte" (one Write per byte). It returns the first error.
func writeAll(c net.Conn, msgs [][]byte, chunking string) error {
	var chunks [][]byte
	switch chunking {
	case "message":
		chunks = msgs
	case "one":
		chunks = [][]byte{bytes.Join(msgs, nil)}
	case "byte":
		for _, b := range bytes.Join(msgs, nil) {
			chunks = append(chunks, []byte{b})
		}
	}
	for _, ch := range chunks {
		if _, err := c.Write(ch); err != nil {
			return err
		}
	}
	return nil
}

func TestWireActsAtNthMessage(t *testing.T) {
	tests := []struct {
		name      string
		rule      WireRule
		forwarded int  // how many of session's messages reach the server
		cut       bool // the connection ends up closed
		writeErr  bool // some Write reports ErrWireCut
		fired     string
	}{
		{name: "query-2-cut-before", rule: WireRule{Message: WireQuery, N: 2, Action: WireCutBefore}, forwarded: 2, cut: true, writeErr: true, fired: "INSERT INTO t VALUES (1)"},
		{name: "query-2-cut-after", rule: WireRule{Message: WireQuery, N: 2, Action: WireCutAfter}, forwarded: 3, cut: true, writeErr: true, fired: "INSERT INTO t VALUES (1)"},
		{name: "parse-1-cut-before", rule: WireRule{Message: WireParse, N: 1, Action: WireCutBefore}, forwarded: 3, cut: true, writeErr: true, fired: "commit"},
		{name: "bind-1-cut-after", rule: WireRule{Message: WireBind, N: 1, Action: WireCutAfter}, forwarded: 5, cut: true, writeErr: true},
		{name: "execute-1-cut-before", rule: WireRule{Message: WireExecute, N: 1, Action: WireCutBefore}, forwarded: 6, cut: true, writeErr: true, fired: "COMMIT"},
		{name: "sync-1-cut-after", rule: WireRule{Message: WireSync, N: 1, Action: WireCutAfter}, forwarded: 8, cut: true, writeErr: true},
		{name: "commit-1-cut-after-extended", rule: WireRule{Message: WireCommit, N: 1, Action: WireCutAfter}, forwarded: 7, cut: true, writeErr: true, fired: "COMMIT"},
		{name: "commit-2-cut-after-simple", rule: WireRule{Message: WireCommit, N: 2, Action: WireCutAfter}, forwarded: 9, cut: true, writeErr: true, fired: " COMMIT ; "},
		{name: "commit-2-cut-before-simple", rule: WireRule{Message: WireCommit, N: 2, Action: WireCutBefore}, forwarded: 8, cut: true, writeErr: true, fired: " COMMIT ; "},
		{name: "query-4-delay", rule: WireRule{Message: WireQuery, N: 4, Action: WireDelay, Delay: time.Millisecond}, forwarded: 10, fired: "SELECT 2"},
		{name: "startup-1-cut-before", rule: WireRule{Message: WireStartup, N: 1, Action: WireCutBefore}, forwarded: 0, cut: true, writeErr: true},
		{name: "any-3-cut-before", rule: WireRule{Message: WireAny, N: 3, Action: WireCutBefore}, forwarded: 2, cut: true, writeErr: true, fired: "INSERT INTO t VALUES (1)"},
		{name: "any-1-cut-before-is-startup", rule: WireRule{Message: WireAny, N: 1, Action: WireCutBefore}, forwarded: 0, cut: true, writeErr: true},
		{name: "request-3-cut-after-is-sync", rule: WireRule{Message: WireRequest, N: 3, Action: WireCutAfter}, forwarded: 8, cut: true, writeErr: true},
		{name: "request-4-cut-after-is-query", rule: WireRule{Message: WireRequest, N: 4, Action: WireCutAfter}, forwarded: 9, cut: true, writeErr: true, fired: " COMMIT ; "},
		{name: "request-2-cut-before-is-query", rule: WireRule{Message: WireRequest, N: 2, Action: WireCutBefore}, forwarded: 2, cut: true, writeErr: true, fired: "INSERT INTO t VALUES (1)"},
		{name: "query-5-never", rule: WireRule{Message: WireQuery, N: 5, Action: WireCutBefore}, forwarded: 10},
	}
	msgs := session(t)
	for _, chunking := range []string{"message", "one", "byte"} {
		for _, tt := range tests {
			t.Run(chunking+"/"+tt.name, func(t *testing.T) {
				w := NewWire()
				if err := w.Arm(tt.rule); err != nil {
					t.Fatalf("Arm(%v): %v", tt.rule, err)
				}
				fc := newFakeConn()
				c := w.WrapConn(fc)
				t.Cleanup(func() { c.Close() })
				err := writeAll(c, msgs, chunking)
				if got := err != nil; got != tt.writeErr {
					t.Fatalf("write error: got %v; want error %v", err, tt.writeErr)
				}
				if err != nil && !errors.Is(err, ErrWireCut) {
					t.Errorf("write error %v: got no ErrWireCut in its chain", err)
				}
				if want := bytes.Join(msgs[:tt.forwarded], nil); !bytes.Equal(fc.written(), want) {
					t.Errorf("forwarded %d bytes; want the first %d messages (%d bytes)", len(fc.written()), tt.forwarded, len(want))
				}
				if got := fc.isClosed(); got != tt.cut {
					t.Errorf("connection closed: got %v; want %v", got, tt.cut)
				}
				fired := w.Fired()
				if tt.forwarded == len(msgs) && tt.fired == "" {
					if len(fired) != 0 {
						t.Errorf("fired %v; want nothing", fired)
					}
					return
				}
				if len(fired) != 1 {
					t.Fatalf("fired %d rules; want 1", len(fired))
				}
				if fired[0].Rule != tt.rule || fired[0].SQL != tt.fired || fired[0].Conn != 1 {
					t.Errorf("fired %+v; want rule %v with SQL %q on conn 1", fired[0], tt.rule, tt.fired)
				}
			})
		}
	}
}

func TestWireHits(t *testing.T) {
	w := NewWire()
	c := w.WrapConn(newFakeConn())
	t.Cleanup(func() { c.Close() })
	if err := writeAll(c, session(t), "message"); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{WireStartup: 1, WireQuery: 4, WireParse: 1, WireBind: 1, WireDescribe: 1, WireExecute: 1, WireSync: 1, WireCommit: 2}
	got := w.Hits()
	if len(got) != len(want) {
		t.Errorf("Hits() = %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Hits()[%s] = %d; want %d", k, got[k], v)
		}
	}
}

func TestWireConnTargeting(t *testing.T) {
	w := NewWire()
	if err := w.Arm(WireRule{Message: WireQuery, N: 1, Action: WireCutBefore, Conn: 2}); err != nil {
		t.Fatal(err)
	}
	fc1, fc2 := newFakeConn(), newFakeConn()
	c1, c2 := w.WrapConn(fc1), w.WrapConn(fc2)
	t.Cleanup(func() { c1.Close(); c2.Close() })
	msgs := session(t)[:2]
	if err := writeAll(c1, msgs, "message"); err != nil {
		t.Fatalf("conn 1: got %v; want no error (the rule targets conn 2)", err)
	}
	if err := writeAll(c2, msgs, "message"); !errors.Is(err, ErrWireCut) {
		t.Fatalf("conn 2: got %v; want ErrWireCut", err)
	}
	if f := w.Fired(); len(f) != 1 || f[0].Conn != 2 {
		t.Errorf("Fired() = %+v; want one firing on conn 2", f)
	}
}

func TestWireReadAfterCut(t *testing.T) {
	w := NewWire()
	if err := w.Arm(WireRule{Message: WireCommit, N: 1, Action: WireCutAfter}); err != nil {
		t.Fatal(err)
	}
	c := w.WrapConn(newFakeConn())
	t.Cleanup(func() { c.Close() })
	msgs := session(t)
	if err := writeAll(c, msgs[:7], "message"); err != nil {
		t.Fatalf("write through the commit: got %v; want nil (the bytes left)", err)
	}
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, ErrWireCut) {
		t.Errorf("read after cut: got %v; want ErrWireCut", err)
	}
	if _, err := c.Write(msgs[7]); !errors.Is(err, ErrWireCut) {
		t.Errorf("write after cut: got %v; want ErrWireCut", err)
	}
}

// waitFired polls until w has fired n rules.
func waitFired(tb testing.TB, w *Wire, n int) {
	tb.Helper()
	testkit.EventuallyNil(tb, func() error {
		if got := len(w.Fired()); got < n {
			return fmt.Errorf("got %d firing(s); want %d", got, n)
		}
		return nil
	}, "the wire's rules to fire")
}

func TestWireStall(t *testing.T) {
	msgs := session(t)
	tests := []struct {
		name    string
		release func(w *Wire, c net.Conn)
		wantErr error
	}{
		{name: "disarm", release: func(w *Wire, _ net.Conn) { w.Disarm() }},
		{name: "deadline", release: func(_ *Wire, c net.Conn) { c.SetDeadline(time.Now()) }, wantErr: os.ErrDeadlineExceeded},
		{name: "write-deadline", release: func(_ *Wire, c net.Conn) { c.SetWriteDeadline(time.Now().Add(-time.Second)) }, wantErr: os.ErrDeadlineExceeded},
		{name: "close", release: func(_ *Wire, c net.Conn) { c.Close() }, wantErr: net.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWire()
			if err := w.Arm(WireRule{Message: WireQuery, N: 2, Action: WireStall}); err != nil {
				t.Fatal(err)
			}
			fc := newFakeConn()
			c := w.WrapConn(fc)
			t.Cleanup(func() { c.Close() })
			done := make(chan error, 1)
			go func() { done <- writeAll(c, msgs[:4], "one") }()
			waitFired(t, w, 1)
			if got, want := fc.written(), bytes.Join(msgs[:2], nil); !bytes.Equal(got, want) {
				t.Errorf("while stalled: forwarded %d bytes; want %d (the messages before the stalled one)", len(got), len(want))
			}
			tt.release(w, c)
			err := <-done
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("stalled write: got %v; want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil {
				if got, want := fc.written(), bytes.Join(msgs[:4], nil); !bytes.Equal(got, want) {
					t.Errorf("after disarm: forwarded %d bytes; want %d", len(got), len(want))
				}
				return
			}
			if _, err := c.Write(msgs[4]); !errors.Is(err, ErrWireCut) {
				t.Errorf("write after a failed stall: got %v; want ErrWireCut (the stream lost part of a write)", err)
			}
			if got, want := fc.written(), bytes.Join(msgs[:2], nil); !bytes.Equal(got, want) {
				t.Errorf("after a failed stall: forwarded %d bytes; want %d", len(got), len(want))
			}
		})
	}
}

func TestWireArmRejects(t *testing.T) {
	tests := []struct {
		name string
		rule WireRule
	}{
		{name: "unknown-message", rule: WireRule{Message: "Querry", N: 1, Action: WireCutBefore}},
		{name: "zero-n", rule: WireRule{Message: WireQuery, Action: WireCutBefore}},
		{name: "no-action", rule: WireRule{Message: WireQuery, N: 1}},
		{name: "delay-without-duration", rule: WireRule{Message: WireQuery, N: 1, Action: WireDelay}},
		{name: "duration-on-cut", rule: WireRule{Message: WireQuery, N: 1, Action: WireCutAfter, Delay: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := NewWire().Arm(tt.rule); !errors.Is(err, ErrWireRule) {
				t.Errorf("Arm(%v) = %v; want ErrWireRule", tt.rule, err)
			}
		})
	}
}

func TestIsCommitSQL(t *testing.T) {
	tests := []struct {
		sql  string
		want bool
	}{
		{"commit", true}, {"COMMIT;", true}, {" end transaction ", true}, {"Commit Work", true},
		{"insert into t values (1); commit", true}, {"commit and chain", false},
		{"rollback", false}, {"select 'commit'", false}, {"", false}, {"commit prepared 'x'", false},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			if got := isCommitSQL(tt.sql); got != tt.want {
				t.Errorf("isCommitSQL(%q) = %v; want %v", tt.sql, got, tt.want)
			}
		})
	}
}

func TestWireInstallChains(t *testing.T) {
	cfg, err := pgconn.ParseConfig("postgres://u@localhost/d")
	if err != nil {
		t.Fatal(err)
	}
	var prevCalled bool
	cfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, c net.Conn) (net.Conn, error) {
		prevCalled = true
		return c, nil
	}
	w := NewWire()
	w.Install(cfg)
	fc := newFakeConn()
	c, err := cfg.AfterNetConnect(context.Background(), cfg, fc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if !prevCalled {
		t.Error("the AfterNetConnect set before Install was not called")
	}
	if _, ok := c.(*wireConn); !ok {
		t.Errorf("AfterNetConnect returned %T; want the Wire's connection", c)
	}
}

// BenchmarkWireWrite measures the decoder alone (no network): one
// extended-protocol query's messages per Write, nothing armed, against a
// plain Write to the same sink.
func BenchmarkWireWrite(b *testing.B) {
	msgs := encode(b,
		&pgproto3.Bind{PreparedStatement: "stmtcache_1", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 1}}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	query := bytes.Join(msgs, nil)
	startup := encode(b, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u"}})[0]
	for _, wired := range []bool{false, true} {
		name := "plain"
		if wired {
			name = "wire"
		}
		b.Run(name, func(b *testing.B) {
			var c net.Conn = discard{}
			if wired {
				c = NewWire().WrapConn(c)
			}
			if _, err := c.Write(startup); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(query)))
			for b.Loop() {
				if _, err := c.Write(query); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discard is a net.Conn sink for benchmarks.
type discard struct{ net.Conn }

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Close() error                { return nil }

// FuzzWirePassThrough writes any byte stream in chunks of any size through a
// Wire with nothing armed: it must not panic, must forward a prefix of the
// stream (holding back at most one incomplete message), and must forward a
// well-formed session whole and count its messages whatever the chunking.
func FuzzWirePassThrough(f *testing.F) {
	valid := bytes.Join(session(f), nil)
	f.Add(valid, uint8(0))
	f.Add(valid, uint8(6))
	f.Add(valid[:len(valid)-3], uint8(255))
	f.Add(append(bytes.Clone(valid[:20]), 0xff, 0xff, 0xff, 0xff, 0xff), uint8(2))
	ssl := encode(f, &pgproto3.SSLRequest{})[0]
	f.Add(append(ssl, "\x16\x03\x01garbage"...), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		for _, stream := range [][]byte{data, valid} {
			w := NewWire()
			fc := newFakeConn()
			c := w.WrapConn(fc)
			for rest := stream; len(rest) > 0; {
				n := min(len(rest), int(chunk)+1)
				if m, err := c.Write(rest[:n]); err != nil || m != n {
					t.Fatalf("Write(%d bytes) = %d, %v; want %d, nil", n, m, err, n)
				}
				rest = rest[n:]
			}
			got := fc.written()
			if !bytes.HasPrefix(stream, got) {
				t.Fatalf("forwarded %d bytes that are not a prefix of the %d written", len(got), len(stream))
			}
			if bytes.Equal(stream, valid) {
				if len(got) != len(valid) {
					t.Fatalf("forwarded %d of the %d bytes of a well-formed session", len(got), len(valid))
				}
				if h := w.Hits(); h[WireQuery] != 4 || h[WireCommit] != 2 {
					t.Fatalf("Hits() = %v; want 4 queries and 2 commits", h)
				}
			}
			c.Close()
		}
	})
}
