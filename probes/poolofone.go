package probes

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/leakcheck"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// PoolOfOne runs op once, with no fault, on a pool of one connection (on
// sqlmock: serving the operation's golden trace), and
// reports a second connection taken while the one is held — the run asking
// the pool for a connection while its only one is taken, which on any pool
// waits for ever once as many runs hold one each — with where the held
// connection was acquired and the waiting goroutine's stack; then an error
// with no fault to blame, and anything left behind (pool, server,
// long-transaction, goroutines).
func PoolOfOne(ctx context.Context, cfg Config, op scenarios.Operation) (res Result) {
	cfg = cfg.withDefaults()
	p := newProbe(cfg, ProbePoolOfOne, op)
	defer func() { res = p.finish() }()
	if err := cfg.check(op); err != nil {
		p.find(p.base(-1, CheckSetup, err.Error()))
		return
	}
	p.baseline(ctx)
	l, err := openLane(ctx, cfg, op, 0, 1)
	if err != nil {
		p.find(p.base(-1, CheckSetup, err.Error()))
		return
	}
	p.lanes = []*lane{l}
	fx, err := p.setup(ctx)
	if err != nil {
		return
	}
	o := runOne(ctx, l, op, fx, faults.Plan{}, runOpts{timeout: cfg.Timeout, second: true,
		atDeadline: func(ctx context.Context, l *lane) (string, string, int) { return p.describeWait(ctx, l) }})
	defer o.cancel()
	p.count(o)
	base := p.base(0, "", "")
	switch {
	case o.second:
		f := base
		f.Check = CheckSecondConnection
		f.Message = fmt.Sprintf("%s asked the pool for a second connection while it held the only one: on a pool of n connections, n runs "+
			"at once each hold one and wait for ever for another. Use the connection, transaction or rows you hold, or close "+
			"them before the next query. The connection held then:\n%s", op.Name, orNone(o.waited))
		f.Stack = "the run, waiting for a second connection:\n" + o.stack
		p.find(f)
	case o.hung:
		p.find(p.hung(base, o))
	case o.run.Err != nil:
		f := base
		f.Check = CheckError
		f.Message = fmt.Sprintf("%s failed on a pool of one connection with no fault armed: %v", op.Name, o.run.Err)
		if o.run.TimedOut {
			f.Message += fmt.Sprintf("\nit was still running at its deadline (%s): %s", cfg.Timeout, orNone(o.waited))
			f.Stack = o.stack
		}
		p.find(f)
	}
	if l.met != nil && len(p.findings) == 0 {
		if err := l.met(); err != nil {
			f := base
			f.Check, f.Message = "sqlmock-expectations", fmt.Sprintf("the run did not follow %s's golden trace: %v", op.Name, err)
			p.find(f)
		}
	}
	for _, f := range leakFindings(l.leaks(ctx, cfg), base) {
		p.find(f)
	}
	return
}

// probe is the state of one probe run.
type probe struct {
	cfg      Config
	op       scenarios.Operation
	res      Result
	start    time.Time
	scope    *leakcheck.Scope // marks every goroutine the probe starts (nil: no goroutine check)
	lanes    []*lane
	round    int
	findings []Finding
}

func newProbe(cfg Config, name string, op scenarios.Operation) *probe {
	p := &probe{cfg: cfg, op: op, start: time.Now(),
		res: Result{Probe: name, Operation: op.Name, Seed: cfg.Seed, Rounds: 1}}
	if cfg.Replay != nil {
		p.res.Replay = cfg.Replay(name, op.Name, cfg.Seed)
	}
	return p
}

// baseline marks the calling goroutine, and so every goroutine the probe
// starts from now on, with a scope of the probe's own: its goroutine check
// looks at those alone, and never at a goroutine of a test running beside it.
// ctx carries the caller's pprof labels, if any.
func (p *probe) baseline(ctx context.Context) {
	if !p.cfg.NoGoroutineCheck {
		p.scope = leakcheck.EnterScope(ctx)
	}
}

// find records f, filled in with what every finding of the probe carries.
func (p *probe) find(f Finding) {
	f.Probe, f.Operation, f.Seed, f.Replay = p.res.Probe, p.op.Name, p.cfg.Seed, p.res.Replay
	f.Round = p.round
	if f.At.IsZero() {
		f.At = time.Now()
	}
	p.findings = append(p.findings, f)
}

// base returns a finding of goroutine g (-1: none) with no holder.
func (p *probe) base(g int, check, msg string) Finding {
	return Finding{Goroutine: g, Holder: -1, Check: check, Message: msg}
}

// count adds a run to the figures.
func (p *probe) count(o outcome) {
	p.res.Runs++
	if o.run.Err != nil {
		p.res.Errors++
	}
	p.res.Fired += len(o.run.Fired)
}

// setup runs the operation's Setup, bounded by the run timeout; a failure
// is a setup finding.
func (p *probe) setup(ctx context.Context) (scenarios.Fixture, error) {
	sctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	fx, err := p.op.Setup(sctx, p.cfg.DB)
	if err != nil {
		p.find(p.base(-1, CheckSetup, fmt.Sprintf("setup: %v", err)))
	}
	return fx, err
}

// hung is the finding of a run that did not return once cancelled.
func (p *probe) hung(base Finding, o outcome) Finding {
	f := base
	f.Check = CheckDeadline
	f.Message = fmt.Sprintf("%s did not return within %s of its cancellation at its deadline (%s): it does not honour its context. %s",
		p.op.Name, cancelGrace(p.cfg.Timeout), p.cfg.Timeout, orNone(o.waited))
	f.Stack = o.dump
	return f
}

// describeWait says, for a run of lane l still running at its deadline,
// what it waits for: the locks its backends wait for and, for each holder
// that is one of the probe's goroutines, what that goroutine's pool holds
// and where it was taken; or, when its own pool is all taken, what holds it.
func (p *probe) describeWait(ctx context.Context, l *lane) (waited, stack string, holder int) {
	holder = -1
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CheckTimeout)
	defer cancel()
	var b, s strings.Builder
	waits, err := p.waitChain(ctx, l.app)
	if err != nil {
		fmt.Fprintf(&b, "(the lock waits could not be read: %v)\n", err)
	}
	seen := map[int]bool{}
	idleHolder := false // a holder idle in its transaction is the root of a chain of waits
	for _, w := range waits {
		b.WriteString(w.String())
		h := p.laneOf(w.holderApp)
		if h != nil {
			fmt.Fprintf(&b, ": goroutine %d's", h.g)
			if kept := h.kept.Load(); kept != nil {
				fmt.Fprintf(&b, " (%s)", *kept)
			}
			if idle := strings.HasPrefix(w.state, "idle"); holder < 0 || (idle && !idleHolder) {
				holder, idleHolder = h.g, idle
			}
		}
		b.WriteByte('\n')
		if h != nil && !seen[h.g] {
			seen[h.g] = true
			if held := h.held(ctx); held != "" {
				fmt.Fprintf(&s, "goroutine %d's pool (application_name %q) held then:\n%s\n", h.g, h.app, held)
			}
		}
	}
	if len(waits) == 0 && l.inUse() >= l.size {
		fmt.Fprintf(&b, "no lock wait; every connection of its own pool (%d) was taken: it waited for one", l.size)
		if kept := l.kept.Load(); kept != nil {
			fmt.Fprintf(&b, " (%s)", *kept)
		}
		b.WriteByte('\n')
		if held := l.held(ctx); held != "" {
			fmt.Fprintf(&s, "goroutine %d's pool (application_name %q) held then:\n%s\n", l.g, l.app, held)
		}
		holder = l.g
	}
	if b.Len() == 0 {
		b.WriteString("no lock wait and a connection free: it was slow, or waited outside the database\n")
	}
	if len(waits) == 0 {
		// nothing on the server explains the wait: where the runs were does
		s.WriteString("the runs' goroutines then:\n" + runStacks())
	}
	return strings.TrimRight(b.String(), "\n"), s.String(), holder
}

// maxChain bounds how far waitChain follows a chain of waits.
const maxChain = 4

// waitChain returns the lock waits of the backends of app and, where one
// waits for a backend of another of the probe's goroutines that itself
// waits, that goroutine's waits too: a chain of waits ends at the session
// that holds its lock without waiting (the leak, idle in its transaction).
func (p *probe) waitChain(ctx context.Context, app string) ([]lockWait, error) {
	var out []lockWait
	seen := map[string]bool{app: true}
	next := []string{app}
	for depth := 0; depth < maxChain && len(next) > 0; depth++ {
		var more []string
		for _, a := range next {
			ws, err := lockWaits(ctx, p.cfg.Admin, a)
			if err != nil {
				return out, err
			}
			for _, w := range ws {
				if w.state == "active" && p.laneOf(w.holderApp) != nil && !seen[w.holderApp] {
					seen[w.holderApp] = true
					more = append(more, w.holderApp)
				}
			}
			out = append(out, ws...)
		}
		next = more
	}
	return out, nil
}

// laneOf returns the probe's lane of application_name app, or nil.
func (p *probe) laneOf(app string) *lane {
	for _, l := range p.lanes {
		if l.app == app {
			return l
		}
	}
	return nil
}

// finish closes the lanes, ends their sessions on the server, checks the
// goroutines, and returns the result, its findings root causes first.
func (p *probe) finish() Result {
	ctx, cancel := context.WithTimeout(context.Background(), 3*p.cfg.CheckTimeout)
	defer cancel()
	if p.scope != nil {
		// Out of the scope before the lanes close: a pgx pool with a leaked
		// connection never closes (its Close waits for it), and the
		// goroutine left waiting is the harness's; the leak is reported
		// already, as the pool check's.
		p.scope.Exit()
	}
	for _, l := range p.lanes {
		l.close()
	}
	if p.cfg.Admin != nil {
		srv := faults.NewServer(p.cfg.Admin)
		for _, l := range p.lanes {
			_, _ = srv.TerminateBackends(ctx, l.app)
		}
	}
	if p.scope != nil {
		if err := leakcheck.FindScope(ctx, p.scope, leakcheck.WithTimeout(p.cfg.CheckTimeout)); err != nil {
			for _, f := range leakFindings(err, p.base(-1, "", "")) {
				p.find(f)
			}
		}
	}
	sortFindings(p.findings)
	p.res.Findings = p.findings
	p.res.Duration = time.Since(p.start)
	return p.res
}

func orNone(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return s
}
