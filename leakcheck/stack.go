package leakcheck

import (
	"fmt"
	"runtime"
	"strings"
)

// stackDepth bounds the program counters kept per recorded event: enough to
// get past database/sql and the driver wrappers (about 15 frames) into the
// caller's code. Frames are resolved only when a report is built.
const stackDepth = 40

// site is where something was acquired: raw program counters.
type site struct {
	pcs [stackDepth]uintptr
	n   int
}

// capture records the caller's stack, skipping skip frames above capture.
func capture(skip int) *site {
	s := &site{}
	s.n = runtime.Callers(skip+2, s.pcs[:])
	return s
}

// frameSkipped reports whether a function belongs to the plumbing between
// the caller's code and the tracker: the runtime, database/sql, the driver
// wrappers and the tracker itself.
func frameSkipped(fn string) bool {
	for _, p := range skippedPrefixes {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

var skippedPrefixes = []string{
	"runtime.",
	"database/sql.",
	"github.com/sessionsafe/sessionsafe/internal/drvwrap.",
	"github.com/sessionsafe/sessionsafe/leakcheck.(*Tracker)",
	"github.com/sessionsafe/sessionsafe/leakcheck.(*PgxTracker)",
	"github.com/jackc/pgx/v5.",
	"github.com/jackc/pgx/v5/pgxpool.",
	"github.com/jackc/pgx/v5/pgconn.",
	"github.com/jackc/puddle/v2.",
	"github.com/sessionsafe/sessionsafe/leakcheck.capture",
}

// background reports whether the stack is database/sql's connection opener
// (a connection opened for the pool, not taken by anyone).
func (s *site) background() bool {
	frames := runtime.CallersFrames(s.pcs[:s.n])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "database/sql.(*DB).connectionOpener") {
			return true
		}
		if !more {
			return false
		}
	}
}

// frames returns up to max frames of the caller's code, formatted as
// "pkg.Func at dir/file.go:line", stopping at the testing package.
func (s *site) frames(max int) []string {
	if s == nil || s.n == 0 {
		return nil
	}
	var out []string
	frames := runtime.CallersFrames(s.pcs[:s.n])
	for len(out) < max {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "testing.") {
			break // the test harness: what called the test is no news
		}
		if f.Function != "" && !frameSkipped(f.Function) {
			out = append(out, fmt.Sprintf("%s at %s:%d", shortFunc(f.Function), shortFile(f.File), f.Line))
		}
		if !more {
			break
		}
	}
	return out
}

// String is the first frame of the caller's code, or "an unknown caller".
func (s *site) String() string {
	if f := s.frames(1); len(f) > 0 {
		return f[0]
	}
	return "an unknown caller"
}

// shortFunc drops the import path before the package name:
// "github.com/x/y/handlers.(*Service).Get" -> "handlers.(*Service).Get".
func shortFunc(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

// shortFile keeps the last directory and the file name.
func shortFile(file string) string {
	i := strings.LastIndexByte(file, '/')
	if i < 0 {
		return file
	}
	if j := strings.LastIndexByte(file[:i], '/'); j >= 0 {
		return file[j+1:]
	}
	return file
}

// shortSQL collapses whitespace and cuts long statements.
func shortSQL(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	const max = 80
	if len(q) > max {
		q = q[:max-3] + "..."
	}
	return q
}
