package leakcheck

import (
	"context"
	"strings"

	"go.uber.org/goleak"
)

// IgnoredGoroutines returns the goleak options for the background goroutines
// of database/sql and pgx that are not leaks. The list is short on purpose;
// each entry says why it is safe. The goroutines database/sql starts to close
// rows or roll back a transaction when their context ends ((*Rows).awaitDone,
// (*Tx).awaitDone) are NOT on it: one still running means rows or a
// transaction were never finished.
func IgnoredGoroutines() []goleak.Option {
	opts := make([]goleak.Option, len(ignoredFuncs))
	for i, f := range ignoredFuncs {
		opts[i] = goleak.IgnoreAnyFunction(f)
	}
	return opts
}

// ignoredFuncs: a goroutine with one of these functions anywhere in its
// stack is not a leak.
var ignoredFuncs = []string{
	// One per open *sql.DB, started by sql.Open/OpenDB, ended by db.Close.
	// A pool left open is a leak of its own, reported by
	// goleak.VerifyTestMain when the test binary ends.
	"database/sql.(*DB).connectionOpener",
	// Started by SetConnMaxLifetime/SetConnMaxIdleTime, one per pool; it
	// exits when the pool is closed.
	"database/sql.(*DB).connectionCleaner",
	// pgx closing a connection it gave up on (an error or a cancelled
	// context mid-query): it sends a cancel request and closes the socket,
	// bounded by a 15 s deadline. The connection is already out of the pool;
	// the server check sees its backend if it lingers.
	"github.com/jackc/pgx/v5/pgconn.(*PgConn).asyncClose.func1",
	// lib/pq sending a cancel request after the caller's context ended
	// mid-call: on a connection of its own it sends CancelRequest and reads
	// until the server closes that connection, which the server does as
	// soon as it has handled it (the dial is bounded by 10 s). A loaded
	// server may take seconds. The cancelled connection itself is marked bad
	// and closed; the pool and server checks see it if it is not. Only the
	// goroutine inside the cancel request is ignored: lib/pq's context
	// watcher still waiting (watchCancel) means a transaction or rows never
	// ended in the driver, and is reported.
	"github.com/lib/pq.(*conn).cancel",
	// One per pgxpool.Pool, ended by pool.Close.
	"github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck",
	// pgx's background reader: at most one per connection, started when a
	// write to the server takes longer than 15 ms (a loaded machine), and
	// left blocked reading that connection until the server next speaks or
	// the connection closes. It belongs to the connection, not to a request;
	// the pool and server checks see a connection that is really held.
	"github.com/jackc/pgx/v5/pgconn/internal/bgreader.(*BGReader).bgRead",
}

// ignoredStack reports whether a stack (full function names) holds an
// ignored function.
func ignoredStack(funcs []string) bool {
	for _, f := range funcs {
		for _, ig := range ignoredFuncs {
			if f == ig {
				return true
			}
		}
	}
	return false
}

// FindGoroutines reports goroutines beyond those the options exclude and
// IgnoredGoroutines. Pass goleak.IgnoreCurrent(), taken before the code under
// test ran, as the baseline. goleak retries for about half a second before it
// reports; ctx is not consulted (goleak offers no way to).
func FindGoroutines(ctx context.Context, opts ...goleak.Option) error {
	_ = ctx
	return result(checkGoroutines(opts), nil)
}

// VerifyGoroutines reports the findings of FindGoroutines through t.
func VerifyGoroutines(t TestingT, opts ...goleak.Option) {
	t.Helper()
	if err := FindGoroutines(context.Background(), opts...); err != nil {
		t.Errorf("%v", err)
	}
}

func checkGoroutines(opts []goleak.Option) []Finding {
	all := append(IgnoredGoroutines(), opts...)
	err := goleak.Find(all...)
	if err == nil {
		return nil
	}
	text := err.Error()
	n := strings.Count(text, "Goroutine ")
	text = strings.TrimPrefix(text, "found unexpected goroutines:\n")
	return []Finding{{
		Check:   CheckGoroutines,
		Summary: plural(n, "goroutine") + " still running beyond the baseline (goleak):",
		Detail:  indent(text, "    "),
	}}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
