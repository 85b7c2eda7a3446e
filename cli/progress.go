package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// isTerminal reports whether w is a character device (a terminal), without x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// counts is a snapshot of a run's progress.
type counts struct {
	Ops, Faults, Violations int64
}

// progress shows a run's progress: a redrawn bar on a terminal, a plain line every interval
// otherwise. total is the number of operations (0: unknown) and deadline the end time (zero:
// none); the fraction done is the larger of the two measures.
type progress struct {
	w        io.Writer
	bar      bool
	label    string
	total    int64
	start    time.Time
	deadline time.Time
	interval time.Duration
	snap     func() counts
	now      func() time.Time

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func newProgress(w io.Writer, mode string, tty bool, label string, total int64, duration time.Duration, now func() time.Time, snap func() counts) *progress {
	p := &progress{w: w, label: label, total: total, now: now, snap: snap, start: now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if duration > 0 {
		p.deadline = p.start.Add(duration)
	}
	switch mode {
	case "off":
		p.w = nil
	case "bar":
		p.bar = true
	case "auto":
		p.bar = tty
	}
	p.interval = 5 * time.Second
	if p.bar {
		p.interval = 200 * time.Millisecond
	}
	return p
}

// Run redraws until Stop or ctx ends; it runs in its own goroutine.
func (p *progress) Run(ctx context.Context) {
	go func() {
		defer close(p.done)
		if p.w == nil {
			<-p.stop
			return
		}
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(false)
			case <-p.stop:
				p.draw(true)
				return
			case <-ctx.Done():
				<-p.stop
				p.draw(true)
				return
			}
		}
	}()
}

// Stop draws the final state and waits for the drawing goroutine to end.
func (p *progress) Stop() {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
}

func (p *progress) fraction(c counts) float64 {
	f := 0.0
	if p.total > 0 {
		f = float64(c.Ops) / float64(p.total)
	}
	if !p.deadline.IsZero() {
		if d := float64(p.now().Sub(p.start)) / float64(p.deadline.Sub(p.start)); d > f {
			f = d
		}
	}
	if f > 1 {
		f = 1
	}
	return f
}

// line renders one progress line (no newline).
func (p *progress) line(c counts, final bool) string {
	elapsed := p.now().Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(c.Ops) / elapsed.Seconds()
	}
	f := p.fraction(c)
	eta := "?"
	if final {
		eta = "done"
	} else if f > 0 {
		eta = (time.Duration(float64(elapsed)/f) - elapsed).Round(time.Second).String()
	}
	stats := fmt.Sprintf("%d ops (%.0f/s)  %d faults  %d violations  ETA %s", c.Ops, rate, c.Faults, c.Violations, eta)
	if !p.bar {
		return fmt.Sprintf("%s: %3.0f%%  %s", p.label, 100*f, stats)
	}
	const width = 30
	n := int(f * width)
	return fmt.Sprintf("%s [%s%s] %3.0f%%  %s", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n), 100*f, stats)
}

func (p *progress) draw(final bool) {
	l := p.line(p.snap(), final)
	if p.bar {
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(p.w, "\r\033[K%s%s", l, end)
		return
	}
	fmt.Fprintln(p.w, l)
}
