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
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// The checks of the mutation proof: focused matrix cases and probes, each aimed at a kind of
// session bug, run on the handlers as they are built. On the correct handlers every check
// finds nothing; the mutation proof (TestMutationProof) builds the handlers with one known
// bug at a time (a source mutant, PlantedBugs, through go's -overlay) and requires the checks
// named for it to find it.

// Check is one focused check: some matrix cases of one catalog operation, or one probe, on
// one backend.
type Check struct {
	// Name says what the check runs, e.g. "UpdateThread-error-live" or "probe-lost-update".
	Name    string
	Backend faults.Backend
	k       killer
}

// String returns the check as backend/name, the name of its subtest in TestKills.
func (c Check) String() string { return c.Backend.String() + "/" + c.Name }

// CheckFinding is what a check found: one broken invariant (a matrix invariant, "live-pool",
// or a probe's check) with where it broke.
type CheckFinding struct {
	Invariant string // e.g. "pool", "error-surfaced", "live-pool", "lost-update"
	Where     string // the matrix case or the probe with its seed
	Message   string // the finding's first line
}

// CheckEnv says where checks run: the Postgres database (migrated with handlers.Migrate), as
// a pgtest.Database gives it — DSN (with application_name=AppName), DB a plain pool on it,
// Admin a pool on the same server with another application_name. Sqlmock checks need none of
// it.
type CheckEnv struct {
	DSN     string
	DB      *sql.DB
	Admin   *sql.DB
	AppName string
	// Seed of the probes' random choices.
	Seed int64
	// Timeout bounds each matrix case (default 5s).
	Timeout time.Duration
}

// killer is one way to catch a bug on one backend: some matrix cases of a
// catalog operation, or a probe.
type killer struct {
	backends []faults.Backend
	// matrix: the cases of op at these step kinds ("clean": the clean case)
	// with these faults; with cancelBlocked, its cancel-blocked cases instead.
	op            string
	steps         []string
	faults        []string
	cancelBlocked bool
	opts          func(lingering *atomic.Int64) []handlers.Option
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

var both = []faults.Backend{scenarios.Sqlmock, scenarios.Postgres}
var pgOnly = []faults.Backend{scenarios.Postgres}

// clean selects the runner's clean case: the operation with no fault, every
// invariant checked.
var clean = []string{"clean"}

// checks are the focused checks by name, in a fixed order.
var checks = []struct {
	name string
	k    killer
}{
	{"UpdateThread-error-live", killer{backends: both, op: OpUpdateThread, steps: []string{"query", "exec"}, faults: []string{"error"}, live: true}},
	{"DeleteThread-exec-error", killer{backends: both, op: OpDeleteThread, steps: []string{"exec"}, faults: []string{"error"}}},
	// The panic is injected at a rows-next step: a panic inside a driver
	// query or exec call leaves database/sql's transaction lock held, so
	// even a correct rollback would then wait for ever.
	{"UpdateThread-panic-live", killer{backends: both, op: OpUpdateThread, steps: []string{"next"}, faults: []string{"panic"}, live: true}},
	{"GetMessages-panic-live", killer{backends: both, op: OpGetMessages, steps: []string{"next"}, faults: []string{"panic"}, live: true}},
	{"UpdateThread-commit-fails", killer{backends: both, op: OpUpdateThread, steps: []string{"commit"}, faults: []string{"badconn", "error"}}},
	{"UpdateThread-clean", killer{backends: both, op: OpUpdateThread, steps: clean}},
	{"GetMessages-clean", killer{backends: both, op: OpGetMessages, steps: clean}},
	{"GetMessages-error", killer{backends: both, op: OpGetMessages, steps: []string{"next", "query"}, faults: []string{"error"}}},
	{"ListThreads-next-error", killer{backends: both, op: OpListThreads, steps: []string{"next"}, faults: []string{"error"}}},
	{"GetThread-clean-pool-1", killer{backends: both, op: OpGetThread, steps: clean, poolCap: 1}},
	// A cancel at each statement of each operation: a statement given a context that is
	// never cancelled runs on (context-honoured).
	{"ListThreads-cancel", killer{backends: pgOnly, op: OpListThreads, steps: []string{"begin", "query", "exec"}, faults: []string{"cancel"}}},
	{"CreateThread-cancel", killer{backends: pgOnly, op: OpCreateThread, steps: []string{"begin", "query", "exec"}, faults: []string{"cancel"}}},
	{"GetThread-cancel", killer{backends: pgOnly, op: OpGetThread, steps: []string{"begin", "query", "exec"}, faults: []string{"cancel"}}},
	{"UpdateThread-cancel", killer{backends: pgOnly, op: OpUpdateThread, steps: []string{"begin", "query", "exec"}, faults: []string{"cancel"}}},
	{"DeleteThread-cancel", killer{backends: pgOnly, op: OpDeleteThread, steps: []string{"begin", "query", "exec"}, faults: []string{"cancel"}}},
	{"AutoRename-cancel", killer{backends: pgOnly, op: OpAutoRename, steps: []string{"begin", "query", "exec"}, faults: []string{"cancel"}}},
	{"GetMessages-cancel", killer{backends: pgOnly, op: OpGetMessages, steps: []string{"begin", "query", "exec"}, faults: []string{"cancel"}}},
	{"SendMessage-cancel", killer{backends: pgOnly, op: OpSendMessage, steps: []string{"begin", "query", "exec"}, faults: []string{"cancel"}}},
	{"GetThread-cancel-blocked", killer{backends: pgOnly, op: OpGetThread, cancelBlocked: true}},
	{"DeleteThread-cancel-blocked", killer{backends: pgOnly, op: OpDeleteThread, cancelBlocked: true}},
	{"AutoRename-clean", killer{backends: both, op: OpAutoRename, steps: clean}},
	{"AutoRename-lingering-notifier", killer{backends: both, op: OpAutoRename, steps: clean,
		opts: func(running *atomic.Int64) []handlers.Option {
			return []handlers.Option{handlers.WithNotifier(lingeringNotifier{d: 3 * time.Second, running: running})}
		}}},
	{"SendMessage-clean", killer{backends: both, op: OpSendMessage, steps: clean}},
	{"probe-error-path", killer{backends: pgOnly, probe: "error-path", cfg: ProbeConfig{OpTimeout: time.Second}}},
	{"probe-pool", killer{backends: pgOnly, probe: "pool", cfg: ProbeConfig{PoolSize: 1, OpTimeout: time.Second}}},
	{"probe-external-call", killer{backends: pgOnly, probe: "external-call"}},
	{"probe-notify", killer{backends: pgOnly, probe: "notify"}},
	{"probe-cancellation", killer{backends: pgOnly, probe: "cancellation"}},
	{"probe-lost-update", killer{backends: pgOnly, probe: "lost-update", cfg: ProbeConfig{Workers: 12, Ops: 3}}},
	{"probe-send-order", killer{backends: pgOnly, probe: "send-order", cfg: ProbeConfig{Workers: 4, Ops: 2}}},
	{"probe-mixed", killer{backends: pgOnly, probe: "mixed", cfg: ProbeConfig{Workers: 2, Ops: 10}}},
}

// Checks returns every check on every backend it runs on, in a fixed order.
func Checks() []Check {
	var out []Check
	for _, b := range both {
		for _, c := range checks {
			if slices.Contains(c.k.backends, b) {
				out = append(out, Check{Name: c.name, Backend: b, k: c.k})
			}
		}
	}
	return out
}

// Run runs the check on the handlers as built and returns what it found: nothing on correct
// handlers. A matrix check stops at its first case with a finding and returns every
// invariant that case broke. The error is for a check that could not run (bad environment,
// setup failure, cancelled context). On Postgres the check runs under an application_name
// of its own, and its sessions are terminated afterwards, so what one check leaked is never
// blamed on another.
func (c Check) Run(ctx context.Context, env CheckEnv) ([]CheckFinding, error) {
	if c.Backend == scenarios.Postgres && (env.DSN == "" || env.DB == nil || env.Admin == nil || env.AppName == "") {
		return nil, fmt.Errorf("threadsuite: check %s needs DSN, DB, Admin and AppName: %w", c, scenarios.ErrConfig)
	}
	if env.Timeout <= 0 {
		env.Timeout = 5 * time.Second
	}
	tag := "k" + strings.ReplaceAll(strings.ToLower(c.Name), "-", "")
	if len(tag) > 14 {
		tag = tag[:14]
	}
	if c.k.probe != "" {
		return probeCheck(ctx, env, c.k, tag)
	}
	return matrixCheck(ctx, env, c.Backend, c.k, tag)
}

// probeCheck runs a probe.
func probeCheck(ctx context.Context, env CheckEnv, kl killer, tag string) ([]CheckFinding, error) {
	p, ok := LookupProbe(kl.probe)
	if !ok {
		return nil, fmt.Errorf("threadsuite: check: no probe %q: %w", kl.probe, scenarios.ErrConfig)
	}
	tg, err := env.target(tag)
	if err != nil {
		return nil, err
	}
	defer env.release(ctx, tg)
	pc := kl.cfg
	pc.Seed = env.Seed
	res := p.Run(ctx, ProbeEnv{DSN: tg.dsn, AppName: tg.app, Admin: env.Admin}, pc)
	var out []CheckFinding
	for _, f := range res.Findings {
		if f.Check == "setup" {
			return nil, fmt.Errorf("probe %s: %s", p.Name, firstLineOf(f.Message))
		}
		out = append(out, CheckFinding{Invariant: f.Check, Where: fmt.Sprintf("%s seed=%d", p.Name, res.Seed), Message: firstLineOf(f.Message)})
	}
	return out, nil
}

// matrixCheck runs the matrix cases of one catalog operation that the killer selects, up to
// the first with a finding.
func matrixCheck(ctx context.Context, env CheckEnv, b faults.Backend, kl killer, tag string) ([]CheckFinding, error) {
	var live atomic.Pointer[string]
	var lingering atomic.Int64
	defer waitZero(&lingering, 5*time.Second) // nothing the check started outlives it
	var opts []handlers.Option
	if kl.opts != nil {
		opts = kl.opts(&lingering)
	}
	opts = append(opts, handlers.WithLogger(quiet))
	op, ok := Lookup(Catalog(opts...), kl.op)
	if !ok {
		return nil, fmt.Errorf("threadsuite: check: no operation %q: %w", kl.op, scenarios.ErrConfig)
	}
	op = kl.wrap(op, &live)
	rc := scenarios.Config{
		Backend:      b,
		Golden:       GoldenFS(),
		Timeout:      env.Timeout,
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
	if kl.cancelBlocked {
		rc.Faults = nil // the default faults: cancel-blocked is one of them, where a statement can block
		rc.Only = func(c scenarios.Case) bool { return c.Fault.Kind == faults.KindCancelBlocked }
	}
	var tg pgTarget
	if b == scenarios.Postgres {
		var err error
		if tg, err = env.target(tag); err != nil {
			return nil, err
		}
		defer env.release(ctx, tg)
		rc.DSN, rc.DB, rc.Admin, rc.AppName = tg.dsn, env.DB, env.Admin, tg.app
	}
	r, err := scenarios.NewRunner(ctx, rc, op)
	if err != nil {
		return nil, fmt.Errorf("matrix %s on %s: %w", kl.op, b, err)
	}
	defer func() { _ = r.Close() }()
	cases := r.Cases()
	var setupErr error
	for _, c := range cases {
		live.Store(nil)
		res := r.RunCase(ctx, c)
		var out []CheckFinding
		if l := live.Load(); l != nil {
			out = append(out, CheckFinding{Invariant: "live-pool", Where: c.Name(), Message: firstLineOf(*l)})
		}
		for _, f := range res.Findings {
			if f.Invariant == scenarios.InvSetup {
				setupErr = errors.New(firstLineOf(f.Message))
				continue
			}
			out = append(out, CheckFinding{Invariant: string(f.Invariant), Where: c.Name(), Message: firstLineOf(f.Message)})
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("matrix %s on %s: no case selected (steps %v, faults %v)", kl.op, b, kl.steps, kl.faults)
	}
	return nil, setupErr
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

// pgTarget is the Postgres side of one check: the DSN and application_name
// its pools use.
type pgTarget struct {
	dsn, app string
}

// target returns a DSN of cfg's database whose connections carry an
// application_name of their own, derived from cfg.AppName and tag.
func (cfg CheckEnv) target(tag string) (pgTarget, error) {
	app := derivedAppName(cfg.AppName, tag)
	dsn, err := withAppName(cfg.DSN, app)
	if err != nil {
		return pgTarget{}, fmt.Errorf("threadsuite: check: %w", err)
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
func (cfg CheckEnv) release(ctx context.Context, t pgTarget) {
	if t.app == "" || cfg.Admin == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = faults.NewServer(cfg.Admin).TerminateBackends(cctx, t.app)
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
