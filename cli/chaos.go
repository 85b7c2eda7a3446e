package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/internal/redact"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/report"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// shrinkBudget bounds the time spent shrinking one violation.
const (
	shrinkBudget   = 90 * time.Second
	shrinkAttempts = 24
)

func runChaos(ctx context.Context, o *options, e *env) int {
	return chaosCommand(ctx, "chaos", o, e)
}

// chaosConfig turns the flags into an engine configuration.
func chaosConfig(o *options) chaos.Config {
	at, _ := parseIndices(o.faultsAt)
	return chaos.Config{
		Seed: o.seed, Workers: o.workers, Ops: o.ops, Duration: o.duration, FaultRate: o.faultRate,
		From: o.from, FaultsAt: at, OpTimeout: o.opTimeout, Panics: true,
		TerminateEvery: o.terminateEvery, RestartEvery: o.restartEvery, PauseEvery: o.pauseEvery,
	}
}

// replayCommand prints the command line that reruns cfg on backend exactly.
func replayCommand(o *options, backend string, cfg chaos.Config) string {
	args := []string{o.prog + " replay" + o.catalogArg, "-backend", backend, "-seed", strconv.FormatInt(cfg.Seed, 10),
		"-workers", strconv.Itoa(cfg.Workers)}
	if cfg.Ops > 0 {
		args = append(args, "-ops", strconv.Itoa(cfg.Ops))
	} else {
		args = append(args, "-duration", cfg.Duration.String())
	}
	if cfg.From > 0 {
		args = append(args, "-from", strconv.Itoa(cfg.From))
	}
	if cfg.OpTimeout > 0 {
		args = append(args, "-op-timeout", cfg.OpTimeout.String())
	}
	args = append(args, "-fault-rate", strconv.FormatFloat(cfg.FaultRate, 'g', -1, 64))
	if cfg.FaultsAt != nil && cfg.FaultRate > 0 {
		var s []string
		for _, i := range cfg.FaultsAt {
			s = append(s, strconv.Itoa(i))
		}
		args = append(args, "-faults-at", strings.Join(s, ","))
	}
	for name, d := range map[string]time.Duration{"-terminate-every": cfg.TerminateEvery, "-restart-every": cfg.RestartEvery, "-pause-every": cfg.PauseEvery} {
		if d > 0 {
			args = append(args, name, d.String())
		}
	}
	return strings.Join(args, " ")
}

// chaosCommand is chaos and replay -seed: run on every backend, shrink what fails (chaos
// only), write the reports.
func chaosCommand(ctx context.Context, name string, o *options, e *env) int {
	if !o.seedSet {
		o.seed = e.now().UnixNano() % 1_000_000_000
	}
	if name == "replay" {
		o.shrink = false
	}
	fmt.Fprintf(e.stdout, "%s %s: seed %d (rerun with -seed %d)\n", e.prog, name, o.seed, o.seed)
	rep := report.New(name, o.args, o.seed, e.now())
	logw := io.Discard
	if o.verbose {
		logw = e.stderr
	}
	for _, backend := range o.backends() {
		if ctx.Err() != nil {
			break
		}
		var err error
		switch backend {
		case "sqlmock":
			err = chaosMock(ctx, o, e, rep, logw)
		case "postgres":
			err = chaosPostgres(ctx, o, e, rep, logw)
		}
		if err != nil {
			var se *setupError
			if !errors.As(err, &se) && ctx.Err() == nil {
				err = &setupError{err}
			}
			if ctx.Err() == nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", backend, err))
				fmt.Fprintf(e.stderr, "%s %s: %s: %s\n", e.prog, name, backend, redact.Text(oneLine(err.Error())))
			}
		}
	}
	rep.Interrupted = ctx.Err() != nil
	return finish(e, o, rep)
}

func chaosProgress(o *options, e *env, label string, c *chaos.Counters) *progress {
	total := int64(o.ops)
	dur := o.duration
	return newProgress(e.stdout, o.progress, e.isTerminal, label, total, dur, e.now, func() counts {
		return counts{Ops: c.Ops.Load(), Faults: c.Faults.Load(), Violations: c.Violations.Load()}
	})
}

func chaosMock(ctx context.Context, o *options, e *env, rep *report.Report, logw io.Writer) error {
	cfg := chaosConfig(o)
	cfg.Counters = &chaos.Counters{}
	cfg.Log = logw
	p := chaosProgress(o, e, "chaos sqlmock", cfg.Counters)
	p.Run(ctx)
	res, err := chaos.RunMock(ctx, cfg, o.cat.sqlmockOperations(), o.cat.Golden, func(c scenarios.Case) string { return caseReplay(c, o) })
	p.Stop()
	if res == nil {
		return err
	}
	run := report.ChaosRun{Backend: "sqlmock", Seed: o.seed, Workers: o.workers, Operations: res.Operations, Errors: res.Errors,
		Faults: res.Faults, Violations: len(res.Findings), Seconds: res.Duration.Seconds(), Interrupted: res.Interrupted}
	if res.Duration > 0 {
		run.OpsPerSec = float64(res.Operations) / res.Duration.Seconds()
	}
	rep.Chaos = append(rep.Chaos, run)
	for _, f := range res.Findings {
		c := f.Finding.Case
		rep.Violations = append(rep.Violations, report.Violation{
			ID: fmt.Sprintf("V%d", len(rep.Violations)+1), Source: "chaos", Backend: "sqlmock",
			Operation: c.Operation, Step: c.Step, StepKind: c.StepName(), Fault: c.FaultName(),
			Invariant: string(f.Finding.Invariant), Message: f.Finding.Message, Trace: f.Finding.Trace,
			Seed: o.seed + int64(f.Worker), Replay: f.Finding.Replay,
			// Each operation is a case of its own, on a mock of its own: its scope.
			Scope: fmt.Sprintf("%s operation %d", chaosScope(f.Worker), f.OpIndex), Seq: chaosSeq(f.OpIndex),
			// A matrix case is already minimal: one operation, one fault.
			Shrunk: f.Finding.Replay,
		})
	}
	return err
}

func chaosPostgres(ctx context.Context, o *options, e *env, rep *report.Report, logw io.Writer) error {
	srv, err := startPostgres(ctx, o, logw)
	if err != nil {
		return err
	}
	defer srv.Close()
	db, err := newDatabase(ctx, srv, o.cat)
	if err != nil {
		return err
	}
	defer db.Close()
	target := chaos.Target{DSN: db.DSN, Admin: db.Admin, AppName: db.AppName}
	if srv.Provider() != pgtest.ProviderDSN {
		target.Server = srv
	}
	cfg := chaosConfig(o)
	// Panics are injected where database/sql calls the driver; the pgx injector works on
	// the wire.
	cfg.Panics = !o.cat.Chaos.Pgx
	cfg.Counters = &chaos.Counters{}
	cfg.Log = logw
	cfg.GoroutineOptions = []goleak.Option{
		// A restarted local server gets a new process, and pgtest a new goroutine waiting
		// for it: the harness's, not a leak of the code under test.
		goleak.IgnoreAnyFunction("github.com/sessionsafe/sessionsafe/pgtest.(*localServer).start.func1"),
		// Restarting or pausing a container talks to Docker over HTTP, whose client keeps
		// an idle connection; the handlers make no HTTP call.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	}
	p := chaosProgress(o, e, "chaos postgres", cfg.Counters)
	p.Run(ctx)
	res, err := chaos.Run(ctx, o.cat.Chaos, cfg, target)
	p.Stop()
	if err != nil {
		return err
	}
	run := report.ChaosRun{Backend: "postgres", Provider: srv.Provider(), Seed: o.seed, Workers: o.workers,
		Operations: res.Operations, Errors: res.Errors, Faults: res.Faults, Terminated: res.Terminated,
		Restarts: res.Restarts, Pauses: res.Pauses, Acked: res.Acked, Ambiguous: res.Ambiguous,
		Violations: len(res.Violations), Seconds: res.Duration.Seconds(), OpsPerSec: res.OpsPerSec(), Interrupted: res.Interrupted}
	rep.Chaos = append(rep.Chaos, run)
	full := replayCommand(o, "postgres", cfg)
	var shrunk string
	if len(res.Violations) > 0 && o.shrink && ctx.Err() == nil {
		fmt.Fprintf(e.stdout, "shrinking %d violation(s) of seed %d ...\n", len(res.Violations), o.seed)
		newTarget := func(ctx context.Context) (chaos.Target, func(), error) {
			d, err := newDatabase(ctx, srv, o.cat)
			if err != nil {
				return chaos.Target{}, nil, err
			}
			return chaos.Target{DSN: d.DSN, Admin: d.Admin, AppName: d.AppName, Server: target.Server}, func() { d.Close() }, nil
		}
		sh, err := chaos.Shrink(ctx, o.cat.Chaos, cfg, res, newTarget, shrinkBudget, shrinkAttempts, logw)
		switch {
		case err != nil:
		case sh.Err != nil:
			// The smallest failing run passed a rerun: its failure was the moment's, not
			// its own. The violation stands, with the whole run's replay.
			fmt.Fprintf(e.stdout, "%s\n  the violation stands; replay the whole run\n", sh.Err)
		case sh.Reduced:
			shrunk = replayCommand(o, "postgres", sh.Config)
			fmt.Fprintf(e.stdout, "shrunk in %s (%d attempts, the smallest failing %d more times alone) to %s\n  %s\n",
				sh.Took.Round(time.Millisecond), sh.Attempts, chaos.Confirmations, chaos.Describe(sh.Config), shrunk)
		default:
			fmt.Fprintf(e.stdout, "could not shrink: no smaller run failed in %d attempts\n", sh.Attempts)
		}
	}
	shrunkIdx := 0 // the violation Shrink starts from: the first of one operation
	for i, v := range res.Violations {
		if v.OpIndex >= 0 {
			shrunkIdx = i
			break
		}
	}
	for i, v := range res.Violations {
		replay := full
		if v.Worker >= 0 && v.OpIndex >= 0 && cfg.Workers > 1 {
			c := cfg
			c.Seed, c.Workers, c.Ops, c.Duration = v.StreamSeed, 1, v.OpIndex+1, 0
			replay = replayCommand(o, "postgres", c) + "   # worker " + strconv.Itoa(v.Worker) + "'s stream alone; the whole run: " + full
		}
		rep.Violations = append(rep.Violations, chaosViolation(v, o.seed, replay))
		rep.Violations[len(rep.Violations)-1].ID = fmt.Sprintf("V%d", len(rep.Violations))
		if i == shrunkIdx {
			rep.Violations[len(rep.Violations)-1].Shrunk = shrunk
		}
	}
	return nil
}

// chaosViolation is the report's violation for v, a violation of a chaos run on Postgres
// of seed seed, which replay reruns: with the worker as its Scope and the operation's
// index as its Seq, so that a symptom links to the earlier leaks of its own worker.
func chaosViolation(v chaos.Violation, seed int64, replay string) report.Violation {
	msg := v.Message
	switch {
	case v.OpIndex >= 0:
		msg = fmt.Sprintf("worker %d (stream seed %d), operation %d: %s", v.Worker, v.StreamSeed, v.OpIndex, msg)
	case v.Worker >= 0:
		msg = fmt.Sprintf("worker %d (stream seed %d), at quiescence: %s", v.Worker, v.StreamSeed, msg)
	}
	if len(v.Faults) > 0 {
		msg += "\nfaults in this operation: " + strings.Join(v.Faults, ", ")
	}
	return report.Violation{
		Source: "chaos", Backend: "postgres",
		Operation: v.Operation, Invariant: v.Invariant, Message: msg, Trace: v.Trace, Attribution: v.Attribution,
		Seed: seedOf(v, seed), Replay: replay, Scope: chaosScope(v.Worker), Seq: chaosSeq(v.OpIndex),
	}
}

// quiescenceSeq is the Seq of what the checks at quiescence find: after every operation.
const quiescenceSeq = 1 << 40

// chaosScope is the report's Scope of a chaos violation of worker w: the worker (its pool,
// the harm a leak of its own can do), or "" for one of no worker's (a goroutine outliving
// the run), which reaches every worker.
func chaosScope(w int) string {
	if w < 0 {
		return ""
	}
	return "worker " + strconv.Itoa(w)
}

// chaosSeq is the report's Seq of a chaos violation seen at the worker's operation i (-1:
// at quiescence, after every operation). Workers run side by side, so an index orders
// within its worker only — which is what links a symptom to its worker's earlier leak.
func chaosSeq(i int) int64 {
	if i < 0 {
		return quiescenceSeq
	}
	return int64(i) + 1
}

func seedOf(v chaos.Violation, seed int64) int64 {
	if v.Worker < 0 {
		return seed
	}
	return v.StreamSeed
}
