package threadsuite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/internal/mutant"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// The mutation proof: every session bug of internal/mutant is planted in the
// handlers (through the context, mutant.With) and the harness must catch it —
// the matrix runner on the operations the bug can affect, or the concurrency
// probe that targets it. The result is a KillTable: bug × backend → the check
// that caught it.

// Verdict is the outcome of one bug on one backend.
type Verdict string

// The verdicts.
const (
	// Killed: a check reported a finding with the bug planted.
	Killed Verdict = "killed"
	// Survived: every check of the bug on the backend passed: the harness
	// missed the bug there.
	Survived Verdict = "SURVIVED"
	// NotApplicable: the backend cannot show the bug (the reason says why).
	NotApplicable Verdict = "n/a"
	// Broken: a check could not run (setup or environment error).
	Broken Verdict = "ERROR"
)

// Bug names a session bug the mutation proof plants in the handlers, e.g.
// "RollbackMissingOnError"; Bugs lists every one.
type Bug string

// Bugs returns every bug the mutation proof plants, in a fixed order.
func Bugs() []Bug {
	var out []Bug
	for _, b := range mutant.All() {
		out = append(out, Bug(b.String()))
	}
	return out
}

// Kill is one cell of the kill table: one planted bug on one backend.
type Kill struct {
	Bug     Bug
	Backend faults.Backend
	Verdict Verdict
	Check   string        // what caught it: "matrix/<invariant>" or "probe/<probe>:<check>"
	Where   string        // the matrix case or probe that caught it, e.g. "UpdateThread/step-5-query/error"
	Detail  string        // the finding's first line, or why the bug is not applicable / survived
	Tried   int           // cases or probes run
	Elapsed time.Duration // time spent on this cell
}

// KillTable is the result of the mutation proof, one Kill per bug and
// backend, in Bugs() order.
type KillTable struct {
	Kills []Kill
}

// Survivors returns the bugs no backend caught, and the cells that could not
// run (a check that cannot run proves nothing).
func (t KillTable) Survivors() []Kill {
	killed := map[Bug]bool{}
	for _, k := range t.Kills {
		if k.Verdict == Killed {
			killed[k.Bug] = true
		}
	}
	var out []Kill
	for _, k := range t.Kills {
		if k.Verdict == Broken || (k.Verdict == Survived && !killed[k.Bug]) {
			out = append(out, k)
		}
	}
	return out
}

// Missed returns every cell where a check was expected to catch the bug and
// did not (Survived or Broken), even when another backend caught it.
func (t KillTable) Missed() []Kill {
	var out []Kill
	for _, k := range t.Kills {
		if k.Verdict == Survived || k.Verdict == Broken {
			out = append(out, k)
		}
	}
	return out
}

// String prints the table: one line per bug and backend, with the check that
// caught the bug and where.
func (t KillTable) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "BUG\tBACKEND\tVERDICT\tCAUGHT BY\tWHERE\tTRIED\tTIME")
	for _, k := range t.Kills {
		check, where := k.Check, k.Where
		if k.Verdict != Killed {
			check, where = "-", oneLine(k.Detail, 70)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", k.Bug, k.Backend, k.Verdict, check, where, k.Tried, k.Elapsed.Round(time.Millisecond))
	}
	_ = w.Flush()
	killed, bugs := 0, map[Bug]bool{}
	for _, k := range t.Kills {
		bugs[k.Bug] = bugs[k.Bug] || k.Verdict == Killed
	}
	for _, ok := range bugs {
		if ok {
			killed++
		}
	}
	fmt.Fprintf(&b, "%d of %d planted bugs killed", killed, len(bugs))
	if s := t.Survivors(); len(s) > 0 {
		fmt.Fprintf(&b, "; %d cell(s) survived or could not run", len(s))
	}
	return b.String()
}

// MutationConfig says where the mutation proof runs.
type MutationConfig struct {
	// Backends to run on; nil: Sqlmock, and Postgres when DSN is set.
	Backends []faults.Backend
	// The Postgres database (migrated with handlers.Migrate), as a
	// pgtest.Database gives it: DSN (with application_name=AppName), DB a
	// plain pool on it, Admin a pool on the same server with another
	// application_name.
	DSN     string
	DB      *sql.DB
	Admin   *sql.DB
	AppName string
	// Bugs to plant; nil: every one (Bugs()).
	Bugs []Bug
	// Seed of the probes' random choices.
	Seed int64
	// Timeout bounds each matrix case (default 5s).
	Timeout time.Duration
	// Logf, if set, is told each cell's verdict as it is reached.
	Logf func(format string, args ...any)
}

// killer is one way to catch a bug on one backend: some matrix cases of a
// catalog operation, or a probe.
type killer struct {
	backends []faults.Backend
	// matrix: the cases of op at these step kinds ("clean": the clean case)
	// with these faults.
	op     string
	steps  []string
	faults []string
	opts   func(lingering *atomic.Int64) []handlers.Option
	// poolCap limits the case's pool to that many connections while the
	// operation runs (a second connection taken while one is held then
	// waits until the operation's one-second deadline).
	poolCap int
	// live checks the pool right after the operation returns, while the
	// request's context is still live: once it ends, database/sql rolls
	// back a transaction the code forgot and hides the leak.
	live bool
	// probe
	probe string
	cfg   ProbeConfig
}

func (k killer) on(b faults.Backend) bool {
	return slices.Contains(k.backends, b)
}

var both = []faults.Backend{scenarios.Sqlmock, scenarios.Postgres}
var pgOnly = []faults.Backend{scenarios.Postgres}

// clean selects the runner's clean case: the operation with no fault, every
// invariant checked.
var clean = []string{"clean"}

// mutationCatalog says, per bug, which checks are run to catch it (in order;
// the first that reports a finding — and passes without the bug — kills it)
// and, per backend where none applies, why.
var mutationCatalog = map[mutant.Bug]struct {
	killers []killer
	na      map[faults.Backend]string
}{
	mutant.RollbackMissingOnError: {killers: []killer{
		{backends: both, op: OpUpdateThread, steps: []string{"query", "exec"}, faults: []string{"error"}, live: true},
		{backends: pgOnly, probe: "error-path"},
	}},
	// The panic is injected at a rows-next step: a panic inside a driver
	// query or exec call leaves database/sql's transaction lock held, so
	// even a correct rollback would then wait for ever.
	mutant.RollbackSkippedOnPanic: {killers: []killer{
		{backends: both, op: OpUpdateThread, steps: []string{"next"}, faults: []string{"panic"}, live: true},
		{backends: both, op: OpGetMessages, steps: []string{"next"}, faults: []string{"panic"}, live: true},
	}},
	mutant.CommitErrorIgnored: {killers: []killer{
		{backends: both, op: OpUpdateThread, steps: []string{"commit"}, faults: []string{"badconn", "error"}},
	}},
	mutant.RowsNotClosed: {killers: []killer{
		{backends: both, op: OpGetMessages, steps: clean},
		{backends: both, op: OpGetMessages, steps: []string{"next", "query"}, faults: []string{"error"}},
	}},
	mutant.RowsErrUnchecked: {killers: []killer{
		{backends: both, op: OpListThreads, steps: []string{"next"}, faults: []string{"error"}},
		{backends: both, op: OpGetMessages, steps: []string{"next"}, faults: []string{"error"}},
	}},
	mutant.QueryOnPoolInsideUnit: {killers: []killer{
		{backends: both, op: OpGetThread, steps: clean, poolCap: 1},
		{backends: pgOnly, probe: "pool", cfg: ProbeConfig{PoolSize: 1, OpTimeout: time.Second}},
	}},
	mutant.TxHeldAcrossTitleGenerator: {killers: []killer{
		{backends: pgOnly, probe: "external-call"},
		{backends: both, op: OpAutoRename, steps: clean},
	}},
	mutant.GoroutineWithoutRequestContext: {killers: []killer{
		{backends: pgOnly, probe: "notify"},
		{backends: both, op: OpAutoRename, steps: clean,
			opts: func(running *atomic.Int64) []handlers.Option {
				return []handlers.Option{handlers.WithNotifier(lingeringNotifier{d: 3 * time.Second, running: running})}
			}},
	}},
	mutant.ConnNeverClosed: {killers: []killer{
		{backends: both, op: OpUpdateThread, steps: []string{"query", "exec"}, faults: []string{"error"}, live: true},
	}},
	mutant.ContextNotPassed: {killers: []killer{
		{backends: pgOnly, op: OpGetThread, steps: []string{"query"}, faults: []string{"cancel"}},
		{backends: pgOnly, probe: "cancellation"},
	}, na: map[faults.Backend]string{
		scenarios.Sqlmock: "sqlmock's expectations for a cancel end the run at the fault, so the statement the bug runs after it fails there and an error surfaces either way",
	}},
	mutant.MetadataReadModifyWrite: {killers: []killer{
		{backends: pgOnly, probe: "lost-update", cfg: ProbeConfig{Workers: 12, Ops: 3}},
		{backends: both, op: OpUpdateThread, steps: clean},
	}},
	mutant.SendRetryWithoutClientID: {killers: []killer{
		{backends: pgOnly, probe: "send-order", cfg: ProbeConfig{Workers: 4, Ops: 2}},
		{backends: both, op: OpSendMessage, steps: clean},
	}},
}

// lingeringNotifier answers at once when its context can be cancelled (the
// request's), and otherwise keeps working for d, as a slow webhook with no
// deadline would: called from a goroutine that was given a context that never
// ends, it is still running after the request.
type lingeringNotifier struct {
	d       time.Duration
	running *atomic.Int64 // calls still running: the proof waits for them before it goes on
}

func (n lingeringNotifier) ThreadRenamed(ctx context.Context, _ handlers.Thread) error {
	if ctx.Done() != nil {
		return nil
	}
	n.running.Add(1)
	defer n.running.Add(-1)
	t := time.NewTimer(n.d)
	defer t.Stop()
	<-t.C
	return nil
}

// MutationProof plants every bug, one at a time, and runs the checks that
// should catch it on each backend. A check counts as catching a bug only if
// the same check passes on the correct handlers (a control run): a check that
// fails either way proves nothing and is reported as Broken. On Postgres each
// check runs under an application_name of its own, and the sessions a bug
// leaked are terminated afterwards, so one bug's leak is never blamed on
// another. The error is for a proof that could not run at all (bad
// configuration, cancelled context); a bug that survives is in the table
// (see KillTable.Survivors).
func MutationProof(ctx context.Context, cfg MutationConfig) (KillTable, error) {
	backends := cfg.Backends
	if backends == nil {
		backends = []faults.Backend{scenarios.Sqlmock}
		if cfg.DSN != "" {
			backends = append(backends, scenarios.Postgres)
		}
	}
	for _, b := range backends {
		if b == scenarios.Postgres && (cfg.DSN == "" || cfg.DB == nil || cfg.Admin == nil || cfg.AppName == "") {
			return KillTable{}, fmt.Errorf("threadsuite: mutation proof on postgres needs DSN, DB, Admin and AppName: %w", scenarios.ErrConfig)
		}
	}
	bugs := mutant.All()
	if cfg.Bugs != nil {
		bugs = nil
		for _, name := range cfg.Bugs {
			b, ok := mutant.Parse(string(name))
			if !ok {
				return KillTable{}, fmt.Errorf("threadsuite: mutation proof: unknown bug %q (see Bugs()): %w", name, scenarios.ErrConfig)
			}
			bugs = append(bugs, b)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	var t KillTable
	for _, bug := range bugs {
		for _, b := range backends {
			if err := ctx.Err(); err != nil {
				return t, fmt.Errorf("threadsuite: mutation proof: %w", err)
			}
			k := proveOne(ctx, cfg, bug, b)
			if cfg.Logf != nil {
				cfg.Logf("%s on %s: %s %s %s (%d tried, %s) %s", bug, b, k.Verdict, k.Check, k.Where, k.Tried, k.Elapsed.Round(time.Millisecond), k.Detail)
			}
			t.Kills = append(t.Kills, k)
		}
	}
	return t, nil
}

// pgTarget is the Postgres side of one check: the DSN and application_name
// its pools use.
type pgTarget struct {
	dsn, app string
}

// target returns a DSN of cfg's database whose connections carry an
// application_name of their own, derived from cfg.AppName and tag.
func (cfg MutationConfig) target(tag string) (pgTarget, error) {
	app := derivedAppName(cfg.AppName, tag)
	dsn, err := withAppName(cfg.DSN, app)
	if err != nil {
		return pgTarget{}, fmt.Errorf("threadsuite: mutation proof: %w", err)
	}
	return pgTarget{dsn: dsn, app: app}, nil
}

// withAppName returns dsn, which must be a URL, with application_name set
// to app.
func withAppName(dsn, app string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("the DSN must be a URL to set application_name: %w", scenarios.ErrConfig)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// derivedAppName returns an application_name of its own for tag, derived
// from base and short enough that the server (which keeps 63 bytes) tells it
// from base.
func derivedAppName(base, tag string) string {
	if len(base) > 48 {
		base = base[:40] + base[len(base)-8:]
	}
	return base + "-" + tag
}

// release terminates every session of the target: what a bug leaked goes
// with them.
func (cfg MutationConfig) release(ctx context.Context, t pgTarget) {
	if t.app == "" || cfg.Admin == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = faults.NewServer(cfg.Admin).TerminateBackends(cctx, t.app)
}

// proveOne runs the killers of bug on backend b until one catches it.
func proveOne(ctx context.Context, cfg MutationConfig, bug mutant.Bug, b faults.Backend) Kill {
	start := time.Now()
	k := Kill{Bug: Bug(bug.String()), Backend: b, Verdict: NotApplicable}
	entry, ok := mutationCatalog[bug]
	if !ok {
		k.Verdict, k.Detail = Survived, "no check is registered for this bug in the mutation catalog"
		return k
	}
	var broken []string
	for i, kl := range entry.killers {
		if !kl.on(b) {
			continue
		}
		k.Verdict = Survived
		var caught bool
		var err error
		tag := fmt.Sprintf("m%02dk%d", int(bug), i)
		if kl.probe != "" {
			caught, err = probeKill(ctx, cfg, bug, kl, tag, &k)
		} else {
			caught, err = matrixKill(ctx, cfg, bug, b, kl, tag, &k)
		}
		if caught {
			k.Verdict = Killed
			break
		}
		if err != nil {
			broken = append(broken, err.Error())
		}
	}
	switch {
	case k.Verdict == NotApplicable:
		k.Detail = entry.na[b]
		if k.Detail == "" {
			k.Detail = "no check of this backend applies"
		}
	case k.Verdict == Survived && len(broken) > 0:
		k.Verdict, k.Detail = Broken, strings.Join(broken, "; ")
	case k.Verdict == Survived:
		k.Detail = "every check passed with the bug planted"
	}
	k.Elapsed = time.Since(start)
	return k
}

// probeKill runs a probe with the bug planted, then (if it found something)
// without, as the control.
func probeKill(ctx context.Context, cfg MutationConfig, bug mutant.Bug, kl killer, tag string, k *Kill) (bool, error) {
	p, ok := LookupProbe(kl.probe)
	if !ok {
		return false, fmt.Errorf("threadsuite: mutation proof: no probe %q: %w", kl.probe, scenarios.ErrConfig)
	}
	run := func(tag string, bugs []mutant.Bug) (ProbeResult, error) {
		tg, err := cfg.target(tag)
		if err != nil {
			return ProbeResult{}, err
		}
		defer cfg.release(ctx, tg)
		pc := kl.cfg
		pc.Seed = cfg.Seed
		pc.bugs = bugs
		res := p.Run(ctx, ProbeEnv{DSN: tg.dsn, AppName: tg.app, Admin: cfg.Admin}, pc)
		for _, f := range res.Findings {
			if f.Check == "setup" {
				return res, fmt.Errorf("probe %s: %s", p.Name, firstLineOf(f.Message))
			}
		}
		return res, nil
	}
	res, err := run(tag, []mutant.Bug{bug})
	k.Tried++
	if err != nil || len(res.Findings) == 0 {
		return false, err
	}
	ctl, err := run(tag+"c", nil)
	if err != nil {
		return false, err
	}
	if len(ctl.Findings) > 0 {
		return false, fmt.Errorf("probe %s fails without the bug too (not a proof): %s", p.Name, firstLineOf(ctl.Findings[0].String()))
	}
	f := res.Findings[0]
	k.Check = "probe/" + p.Name + ":" + f.Check
	k.Where = fmt.Sprintf("%s seed=%d", p.Name, res.Seed)
	k.Detail = firstLineOf(f.Message)
	return true, nil
}

// matrixKill runs the matrix cases of one catalog operation that the killer
// selects, with the bug planted in each case (not in the clean run the
// runner records first); the case that catches it is rerun without the bug
// on a runner of its own, as the control.
func matrixKill(ctx context.Context, cfg MutationConfig, bug mutant.Bug, b faults.Backend, kl killer, tag string, k *Kill) (bool, error) {
	var live atomic.Pointer[string]
	var lingering atomic.Int64
	defer waitZero(&lingering, 5*time.Second) // nothing the bug started outlives the proof of it
	newRunner := func(tag string) (*scenarios.Runner, pgTarget, error) {
		var opts []handlers.Option
		if kl.opts != nil {
			opts = kl.opts(&lingering)
		}
		opts = append(opts, handlers.WithLogger(quiet))
		op, ok := Lookup(Catalog(opts...), kl.op)
		if !ok {
			return nil, pgTarget{}, fmt.Errorf("threadsuite: mutation proof: no operation %q: %w", kl.op, scenarios.ErrConfig)
		}
		op = kl.wrap(op, &live)
		rc := scenarios.Config{
			Backend:      b,
			Golden:       GoldenFS(),
			Timeout:      cfg.Timeout,
			CheckTimeout: time.Second,
			Faults: func(k faults.StepKind) []faults.Fault {
				if slices.Contains(kl.steps, k.String()) {
					return mustFaults(kl.faults)
				}
				return nil
			},
			Only:   func(c scenarios.Case) bool { return slices.Contains(kl.steps, c.StepName()) },
			Replay: func(scenarios.Case) string { return "" },
		}
		var tg pgTarget
		if b == scenarios.Postgres {
			var err error
			if tg, err = cfg.target(tag); err != nil {
				return nil, tg, err
			}
			rc.DSN, rc.DB, rc.Admin, rc.AppName = tg.dsn, cfg.DB, cfg.Admin, tg.app
		}
		r, err := scenarios.NewRunner(ctx, rc, op)
		if err != nil {
			cfg.release(ctx, tg)
			return nil, tg, fmt.Errorf("matrix %s on %s: %w", kl.op, b, err)
		}
		return r, tg, nil
	}
	r, tg, err := newRunner(tag)
	if err != nil {
		return false, err
	}
	defer cfg.release(ctx, tg)
	defer func() { _ = r.Close() }()
	bctx := mutant.With(ctx, bug)
	var setupErr error
	var hit *scenarios.Case
	cases := r.Cases()
	for _, c := range cases {
		live.Store(nil)
		res := r.RunCase(bctx, c)
		k.Tried++
		if l := live.Load(); l != nil {
			k.Check, k.Where, k.Detail = "matrix+live-pool", c.Name(), firstLineOf(*l)
			hit = &c
			break
		}
		for _, f := range res.Findings {
			if f.Invariant == scenarios.InvSetup {
				setupErr = errors.New(firstLineOf(f.Message))
				continue
			}
			k.Check, k.Where, k.Detail = "matrix/"+string(f.Invariant), c.Name(), firstLineOf(f.Message)
			hit = &c
			break
		}
		if hit != nil {
			break
		}
	}
	if len(cases) == 0 {
		return false, fmt.Errorf("matrix %s on %s: no case selected (steps %v, faults %v)", kl.op, b, kl.steps, kl.faults)
	}
	if hit == nil {
		return false, setupErr
	}
	// The control: the same case on the correct handlers.
	ctl, ctg, err := newRunner(tag + "c")
	if err != nil {
		return false, err
	}
	defer cfg.release(ctx, ctg)
	defer func() { _ = ctl.Close() }()
	for _, c := range ctl.Cases() {
		if c.Name() != hit.Name() {
			continue
		}
		live.Store(nil)
		res := ctl.RunCase(ctx, c)
		if l := live.Load(); l != nil {
			return false, fmt.Errorf("case %s leaks without the bug too (not a proof): %s", c.Name(), firstLineOf(*l))
		}
		if len(res.Findings) > 0 {
			return false, fmt.Errorf("case %s fails without the bug too (not a proof): %s: %s", c.Name(), res.Findings[0].Invariant, firstLineOf(res.Findings[0].Message))
		}
		return true, nil
	}
	return false, fmt.Errorf("case %s: the control run has no such case (the clean trace differs)", hit.Name())
}

// wrap returns op with the killer's pool limit and live pool check around its
// Run. A live leak is stored in live.
func (kl killer) wrap(op scenarios.Operation, live *atomic.Pointer[string]) scenarios.Operation {
	if kl.poolCap <= 0 && !kl.live {
		return op
	}
	inner := op.Run
	op.Run = func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) error {
		if kl.poolCap > 0 {
			db.SetMaxOpenConns(kl.poolCap)
			defer db.SetMaxOpenConns(0)
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Second)
			defer cancel()
		}
		if kl.live {
			// Checked on the way out, a panic included (then re-raised).
			defer func() {
				p := recover()
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				defer cancel()
				if perr := poolLeakWhileLive(cctx, db); perr != nil {
					s := "a connection was still in use after the operation returned, while its request was live (database/sql rolls back for the code only once the context ends): " + perr.Error()
					live.Store(&s)
				}
				if p != nil {
					panic(p)
				}
			}()
		}
		return inner(ctx, db, fx)
	}
	return op
}

// waitZero polls n until it is zero or d has passed.
func waitZero(n *atomic.Int64, d time.Duration) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for n.Load() != 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		}
	}
}

func firstLineOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// oneLine collapses whitespace and cuts s to at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// mustFaults parses faults written in the plan language ("error",
// "pgerr=40001"); the killers' faults are constants, so a bad one is a bug
// of this file.
func mustFaults(names []string) []faults.Fault {
	out := make([]faults.Fault, len(names))
	for i, n := range names {
		p, err := faults.ParsePlan("step=1:" + n)
		if err != nil {
			panic(fmt.Sprintf("threadsuite: killer fault %q: %v", n, err))
		}
		out[i] = p.Rules[0].Fault
	}
	return out
}
