package faults

import (
	"errors"
	"testing"
)

// TestWireCutAfterHidesReply is TestPgxCutAfterHidesReply for the Wire: the
// client never gets the reply to a message cut after it was sent, even when
// it is already reading while the message is written (pgconn reads in the
// background during a slow write, as a cut-after's write is). Were the reply
// handed to that read, the request would succeed on a connection the Wire
// then cuts, and a database/sql pool would hand that connection to the next
// operation, which would fail with ErrWireCut and no fault of its own.
func TestWireCutAfterHidesReply(t *testing.T) {
	for _, tt := range []struct{ name, sql, message string }{
		{"query", "UPDATE t SET a = 1", WireQuery},
		{"request", "UPDATE t SET a = 1", WireRequest},
		{"commit", "COMMIT", WireCommit},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWire()
			if err := w.Arm(WireRule{Message: tt.message, N: 1, Action: WireCutAfter}); err != nil {
				t.Fatal(err)
			}
			srv := newReplyConn([]byte("reply"))
			n, readErr, writeErr := readDuringCutAfter(t, w.WrapConn(srv), srv, queryMessage(tt.sql))
			if n != 0 || !errors.Is(readErr, ErrWireCut) {
				t.Errorf("the client's read got %d bytes, %v; want 0 bytes and an error wrapping ErrWireCut", n, readErr)
			} else if writeErr != nil {
				t.Errorf("write %q: %v", tt.sql, writeErr)
			}
			if f := w.Fired(); len(f) != 1 {
				t.Errorf("fired %v, want one firing", f)
			}
		})
	}
}
