package probes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// Concurrent runs op from Goroutines goroutines at once, RunsPerRound runs
// each, all of a round on one fixture, each run under a seeded fault of its
// own (see the package documentation); after each round it checks that no
// run failed without a fault of its own (a collateral finding naming what
// it waited for and who held it), that nothing was left behind, and the
// Invariant. It stops after the first round with a finding.
func Concurrent(ctx context.Context, cfg Config, op scenarios.Operation) (res Result) {
	cfg = cfg.withDefaults()
	p := newProbe(cfg, ProbeConcurrent, op)
	defer func() { res = p.finish() }()
	if err := cfg.check(op); err != nil {
		p.find(p.base(-1, CheckSetup, err.Error()))
		return
	}
	if cfg.Backend == faults.Mock {
		p.find(p.base(-1, CheckSetup, fmt.Sprintf("probes: %s: the concurrent probe runs on Postgres only: sqlmock serves one expected "+
			"sequence of statements, which concurrent runs would interleave: %v", op.Name, ErrConfig)))
		return
	}
	p.baseline(ctx)
	for g := range cfg.Goroutines {
		l, err := openLane(ctx, cfg, op, g, cfg.PoolSize)
		if err != nil {
			p.find(p.base(-1, CheckSetup, err.Error()))
			return
		}
		p.lanes = append(p.lanes, l)
	}
	opts := runOpts{timeout: cfg.Timeout, atDeadline: p.describeWait}

	// The clean recording: what the faults aim at.
	fx, err := p.setup(ctx)
	if err != nil {
		return
	}
	o := runOne(ctx, p.lanes[0], op, fx, faults.Plan{}, opts)
	p.count(o)
	trace := p.lanes[0].trace()
	p.check(o, true)
	for _, f := range leakFindings(p.lanes[0].leaks(ctx, cfg), p.base(0, "", "")) {
		p.find(f)
	}
	o.cancel()
	if len(p.findings) > 0 {
		return
	}

	s := newSchedule(cfg, p.pairs(trace, op.RunPgx != nil))
	for r := 0; r < cfg.MaxRounds && ctx.Err() == nil; r++ {
		if r >= cfg.MinRounds && s.done() {
			break
		}
		p.round, p.res.Rounds = r, r+1
		if !p.round1(ctx, s.round(r)) {
			break
		}
	}
	return
}

// round1 runs one round with plans[g][k] armed for goroutine g's run k, and
// checks it; it reports whether the probe goes on.
func (p *probe) round1(ctx context.Context, plans [][]faults.Plan) bool {
	fx, err := p.setup(ctx)
	if err != nil {
		return false
	}
	opts := runOpts{timeout: p.cfg.Timeout, atDeadline: p.describeWait}
	outs := make([][]outcome, len(p.lanes))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g, l := range p.lanes {
		l.kept.Store(nil)
		wg.Go(func() {
			<-start
			for k, plan := range plans[g] {
				o := runOne(ctx, l, p.op, fx, plan, opts)
				l.noteKept(p.round, k)
				outs[g] = append(outs[g], o)
				if o.hung {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	defer func() {
		for _, os := range outs {
			for _, o := range os {
				o.cancel()
			}
		}
	}()

	round := Round{Index: p.round, Fixture: fx}
	hung := false
	for _, os := range outs {
		for _, o := range os {
			p.count(o)
			p.check(o, false)
			round.Runs = append(round.Runs, o.run)
			hung = hung || o.hung
		}
	}
	// What the round left behind, while every run's context is still live.
	for _, l := range p.lanes {
		for _, f := range leakFindings(l.leaks(ctx, p.cfg), p.base(l.g, "", "")) {
			p.find(f)
		}
	}
	if p.cfg.Invariant != nil && !hung {
		ictx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		err := p.cfg.Invariant(ictx, p.cfg.DB, round)
		cancel()
		if err != nil {
			p.find(p.base(-1, CheckInvariant, fmt.Sprintf("after round %d: %v", p.round, err)))
		}
	}
	return len(p.findings) == 0
}

// check turns one run's outcome into findings: a run that did not return,
// and a run that failed with no fault of its own (clean: the recording,
// where no run has one).
func (p *probe) check(o outcome, clean bool) {
	base := p.base(o.run.Goroutine, "", "")
	switch {
	case o.hung:
		p.find(p.hung(base, o))
	case o.run.Err == nil || o.run.Faulted:
	case clean:
		f := base
		f.Check = CheckError
		f.Message = fmt.Sprintf("%s failed with no fault armed (the clean run the faults aim at): %v", p.op.Name, o.run.Err)
		if o.run.TimedOut {
			f.Message += fmt.Sprintf("\nit was still running at its deadline (%s): %s", p.cfg.Timeout, o.waited)
			f.Stack = o.stack
		}
		p.find(f)
	case !o.run.TimedOut && o.holder < 0 && !conflict(o.run.Err):
		f := base
		f.Check = CheckError
		f.Message = fmt.Sprintf("%s failed without a fault of its own, waiting for nothing", p.op.Name)
		if len(o.run.Plan.Rules) > 0 {
			f.Message += fmt.Sprintf(" (its plan %s did not fail it)", o.run.Plan)
		}
		f.Message += fmt.Sprintf(": %v", o.run.Err)
		p.find(f)
	default:
		f := base
		f.Check, f.Holder, f.Stack = CheckCollateral, o.holder, o.stack
		var b strings.Builder
		fmt.Fprintf(&b, "%s failed without a fault of its own", p.op.Name)
		if len(o.run.Plan.Rules) > 0 {
			fmt.Fprintf(&b, " (its plan %s did not fail it)", o.run.Plan)
		}
		fmt.Fprintf(&b, ": %v", o.run.Err)
		if o.run.TimedOut {
			fmt.Fprintf(&b, "\nit was still running at its deadline (%s), and was cancelled; what it waited for then:\n%s", p.cfg.Timeout, o.waited)
		}
		if o.holder >= 0 {
			fmt.Fprintf(&b, "\nheld by goroutine %d's session: see where it was acquired below", o.holder)
		}
		f.Message = b.String()
		p.find(f)
	}
}

// pair is one (step, fault) of the clean trace, as the rule that arms it.
type pair = faults.Rule

// pairs returns every (step, fault) of trace the probe tries: the steps the
// code under test asks for (not connect, reset, ping, validity or close,
// which depend on the pool's state), each with the faults that apply there.
func (p *probe) pairs(trace faults.Trace, pgx bool) []pair {
	var out []pair
	for i, st := range trace {
		switch st.Kind {
		case faults.StepBegin, faults.StepExec, faults.StepQuery, faults.StepNext, faults.StepRowsClose,
			faults.StepCommit, faults.StepRollback:
		case faults.StepPrepare:
			if pgx {
				continue // pgx caches prepared statements per connection: a warm one has no such step
			}
		default:
			continue
		}
		rule := matchRule(trace[:i+1], st)
		for _, f := range p.faultsAt(st, pgx) {
			r := rule
			r.Fault = f
			out = append(out, r)
		}
	}
	return out
}

// faultsAt returns the faults tried at step st.
func (p *probe) faultsAt(st faults.Step, pgx bool) []faults.Fault {
	if p.cfg.Faults != nil {
		return p.cfg.Faults(st.Kind)
	}
	if pgx {
		return faults.ApplicablePgx(st.Kind)
	}
	var out []faults.Fault
	for _, f := range faults.Applicable(st.Kind, faults.Postgres) {
		if f.Kind.NeedsWire() || f.Kind.NeedsServer() || (f.Kind == faults.KindPanic && st.Prepared) {
			continue // the lanes have no wire or server faults; a panic in a prepared exec leaks whatever the code does
		}
		out = append(out, f)
	}
	return out
}

// matchRule returns the rule that aims at the last step of upTo, st, by
// kind, SQL and count rather than by index: the nth step of its kind whose
// SQL matches, counted over upTo. A warm pool or a reconnect does not move
// it.
func matchRule(upTo faults.Trace, st faults.Step) faults.Rule {
	pattern := st.Fingerprint
	if pattern == "" {
		pattern = st.SQL
	}
	n := 0
	for _, s := range upTo {
		if s.Kind == st.Kind && ruleMatches(pattern, s) {
			n++
		}
	}
	return faults.Rule{Match: st.Kind, Pattern: pattern, Nth: n}
}

// ruleMatches reports whether a match rule's pattern matches step s, as the
// injectors match it: a case-insensitive substring of its SQL or
// fingerprint; empty matches all.
func ruleMatches(pattern string, s faults.Step) bool {
	if pattern == "" {
		return true
	}
	p := strings.ToLower(pattern)
	return strings.Contains(strings.ToLower(s.SQL), p) || strings.Contains(strings.ToLower(s.Fingerprint), p)
}

// schedule hands out the pairs, shuffled by the seed, to the runs the seed
// marks faulted, round after round. Round r's plans depend on the seed and
// on how many pairs the rounds before it took, so the same seed replays the
// same rounds.
type schedule struct {
	cfg   Config
	pairs []pair
	next  int
}

func newSchedule(cfg Config, pairs []pair) *schedule {
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15))
	rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	return &schedule{cfg: cfg, pairs: pairs}
}

// done reports whether every pair has been handed out (or there is none).
func (s *schedule) done() bool { return s.cfg.FaultRate < 0 || s.next >= len(s.pairs) }

// round returns the plans of round r: plans[g][k] for goroutine g's run k.
func (s *schedule) round(r int) [][]faults.Plan {
	rng := rand.New(rand.NewPCG(uint64(s.cfg.Seed), uint64(r)+1))
	plans := make([][]faults.Plan, s.cfg.Goroutines)
	for g := range plans {
		plans[g] = make([]faults.Plan, s.cfg.RunsPerRound)
		for k := range plans[g] {
			if s.cfg.FaultRate <= 0 || len(s.pairs) == 0 || rng.Float64() >= s.cfg.FaultRate {
				continue
			}
			plans[g][k] = faults.Plan{Rules: []faults.Rule{s.pairs[s.next%len(s.pairs)]}}
			s.next++
		}
	}
	return plans
}

// conflict reports whether err is what PostgreSQL answers a session that
// met another one: a serialization failure or deadlock (class 40), a lock
// not available (55P03), a statement or lock timeout (57014).
func conflict(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "40") || pe.Code == "55P03" || pe.Code == "57014"
}
