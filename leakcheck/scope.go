package leakcheck

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// scopeLabel is the pprof label a Scope puts on goroutines.
const scopeLabel = "leakcheck.scope"

var scopeSeq atomic.Uint64

// Scope marks a goroutine, and every goroutine it starts while marked (and
// theirs, transitively: goroutines inherit pprof labels), so that a
// goroutine check can look at those alone. Unlike a baseline, a Scope is not
// fooled by goroutines of tests running in parallel.
type Scope struct {
	id   string
	prev context.Context
}

// EnterScope marks the calling goroutine with a new Scope and returns it;
// ctx must carry the goroutine's current pprof labels (usually none:
// context.Background() or t.Context()). Call Exit on the same goroutine
// when done.
//
//	s := leakcheck.EnterScope(ctx)
//	defer s.Exit()
//	... the code under test ...
//	err := leakcheck.FindScope(ctx, s)
func EnterScope(ctx context.Context) *Scope {
	s := &Scope{id: strconv.FormatUint(scopeSeq.Add(1), 10), prev: ctx}
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels(scopeLabel, s.id)))
	return s
}

// Exit restores the calling goroutine's previous labels. Goroutines started
// in the scope stay marked.
func (s *Scope) Exit() { pprof.SetGoroutineLabels(s.prev) }

// WithScope enables the goroutine check on the goroutines of s (see
// FindScope) instead of, or besides, WithGoroutines.
func WithScope(s *Scope) Option {
	return optionFunc(func(c *config) {
		if s == nil {
			c.errs = append(c.errs, fmt.Errorf("%w: WithScope(nil)", ErrOption))
			return
		}
		c.scopes = append(c.scopes, s)
	})
}

// FindScope reports the goroutines of s still running, but for the caller,
// goroutines of the testing package (a parent test waiting in t.Run), and
// those on the ignore list (IgnoredGoroutines). It polls to the deadline set
// by WithTimeout: a goroutine may be a moment from its end.
func FindScope(ctx context.Context, s *Scope, opts ...Option) error {
	c, err := buildConfig(append(opts, WithScope(s)))
	if err != nil {
		return err
	}
	return result(checkScope(ctx, s, time.Now().Add(c.timeout)), nil)
}

// VerifyScope reports the findings of FindScope through t.
func VerifyScope(t TestingT, s *Scope, opts ...Option) {
	t.Helper()
	if err := FindScope(context.Background(), s, opts...); err != nil {
		t.Errorf("%v", err)
	}
}

// goroutineGroup is one entry of the goroutine profile: n goroutines with
// the same stack and labels.
type goroutineGroup struct {
	n      int
	labels string
	frames []string // "pkg.Func at file:line"
	funcs  []string // full function names
}

func checkScope(ctx context.Context, s *Scope, deadline time.Time) []Finding {
	var left []goroutineGroup
	poll(ctx, deadline, func() bool {
		left = scopeGoroutines(s)
		return len(left) == 0
	})
	if len(left) == 0 {
		return nil
	}
	n := 0
	var d strings.Builder
	for i, g := range left {
		n += g.n
		if i > 0 {
			d.WriteByte('\n')
		}
		fmt.Fprintf(&d, "    %s with this stack:\n", plural(g.n, "goroutine"))
		for _, f := range g.frames {
			fmt.Fprintf(&d, "        %s\n", f)
		}
	}
	return []Finding{{
		Check:   CheckGoroutines,
		Summary: fmt.Sprintf("%s started in scope %s still running", plural(n, "goroutine"), s.id),
		Detail:  strings.TrimRight(d.String(), "\n"),
	}}
}

// scopeGoroutines reads the goroutine profile and keeps the groups labelled
// with s, minus the caller, the testing package's and the ignored ones.
func scopeGoroutines(s *Scope) []goroutineGroup {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	want := strconv.Quote(scopeLabel) + ":" + strconv.Quote(s.id)
	var out []goroutineGroup
	for _, g := range parseGoroutineProfile(buf.Bytes()) {
		if !strings.Contains(g.labels, want) {
			continue
		}
		if g.has("runtime/pprof.writeGoroutine") {
			g.n-- // the caller
		}
		if g.n <= 0 || g.hasPrefix("testing.") || ignoredStack(g.funcs) {
			continue
		}
		out = append(out, g)
	}
	return out
}

func (g goroutineGroup) has(fn string) bool {
	for _, f := range g.funcs {
		if f == fn {
			return true
		}
	}
	return false
}

func (g goroutineGroup) hasPrefix(p string) bool {
	for _, f := range g.funcs {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	return false
}

// parseGoroutineProfile parses the debug=1 text of the goroutine profile:
//
//	1 @ 0x47d92e 0x4158ee ...
//	# labels: {"leakcheck.scope":"7"}
//	#	0x4dc058	main.leak+0x18	/tmp/main.go:10
func parseGoroutineProfile(b []byte) []goroutineGroup {
	var out []goroutineGroup
	var cur *goroutineGroup
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			cur = nil
		case strings.HasPrefix(line, "# labels: "):
			if cur != nil {
				cur.labels = strings.TrimPrefix(line, "# labels: ")
			}
		case strings.HasPrefix(line, "#\t"):
			if cur == nil {
				continue
			}
			fields := strings.Split(strings.TrimPrefix(line, "#\t"), "\t")
			if len(fields) < 3 {
				continue
			}
			fn := fields[1]
			if i := strings.LastIndex(fn, "+0x"); i >= 0 {
				fn = fn[:i]
			}
			loc := strings.TrimSpace(fields[len(fields)-1])
			file, ln, _ := strings.Cut(loc, ":")
			cur.funcs = append(cur.funcs, fn)
			cur.frames = append(cur.frames, shortFunc(fn)+" at "+shortFile(file)+":"+ln)
		default:
			n, rest, ok := strings.Cut(line, " @ ")
			if !ok || rest == "" {
				continue
			}
			count, err := strconv.Atoi(n)
			if err != nil {
				continue
			}
			out = append(out, goroutineGroup{n: count})
			cur = &out[len(out)-1]
		}
	}
	return out
}
