package cli

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/sessionsafe/sessionsafe/internal/redact"
	"github.com/sessionsafe/sessionsafe/report"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

func runMatrix(ctx context.Context, o *options, e *env) int {
	return matrixCommand(ctx, "matrix", o, e, nil)
}

// inShard reports whether case name falls in shard s: a hash of the name, so the split is
// deterministic, needs no coordination, and a case stays on its shard on every backend.
func inShard(name string, s shard) bool {
	if s.n <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32()%uint32(s.n)) == s.i-1
}

// caseReplay is the command that reruns one matrix case.
func caseReplay(c scenarios.Case, o *options) string {
	return fmt.Sprintf("%s replay%s -backend %s -case '%s'", o.prog, o.catalogArg, c.Backend, c.Name())
}

// matrixCommand runs the matrix (or the cases only selects) on every backend.
func matrixCommand(ctx context.Context, name string, o *options, e *env, only func(scenarios.Case) bool) int {
	rep := report.New(name, o.args, 0, e.now())
	logw := io.Discard
	if o.verbose {
		logw = e.stderr
	}
	filter := func(c scenarios.Case) bool {
		if only != nil && !only(c) {
			return false
		}
		if o.runRE != nil && !o.runRE.MatchString(c.Name()) {
			return false
		}
		return inShard(c.Name(), o.shard)
	}
	for _, backend := range o.backends() {
		if ctx.Err() != nil {
			break
		}
		cfg := scenarios.Config{Only: filter, Replay: func(c scenarios.Case) string { return caseReplay(c, o) }}
		var cleanup func()
		ops := o.cat.Operations
		switch backend {
		case "sqlmock":
			cfg.Backend, cfg.Golden = scenarios.Sqlmock, o.cat.Golden
			ops = o.cat.sqlmockOperations()
		case "postgres":
			srv, err := startPostgres(ctx, o, logw)
			if err != nil && ctx.Err() != nil {
				continue // interrupted while starting: the report says interrupted, not a setup error
			}
			if err != nil {
				rep.Errors = append(rep.Errors, "postgres: "+err.Error())
				fmt.Fprintf(e.stderr, "%s %s: postgres: %s\n", e.prog, name, redact.Text(oneLine(err.Error())))
				continue
			}
			db, err := newDatabase(ctx, srv, o.cat)
			if err != nil && ctx.Err() != nil {
				srv.Close()
				continue
			}
			if err != nil {
				srv.Close()
				rep.Errors = append(rep.Errors, "postgres: "+err.Error())
				fmt.Fprintf(e.stderr, "%s %s: postgres: %s\n", e.prog, name, redact.Text(oneLine(err.Error())))
				continue
			}
			cleanup = func() { db.Close(); srv.Close() }
			cfg.Backend = scenarios.Postgres
			cfg.DSN, cfg.DB, cfg.Admin, cfg.AppName = db.DSN, db.DB, db.Admin, db.AppName
		}
		if err := runMatrixBackend(ctx, name, o, e, cfg, ops, rep); err != nil && ctx.Err() == nil {
			rep.Errors = append(rep.Errors, backend+": "+err.Error())
			fmt.Fprintf(e.stderr, "%s %s: %s: %s\n", e.prog, name, backend, redact.Text(oneLine(err.Error())))
		}
		if cleanup != nil {
			cleanup()
		}
	}
	rep.Interrupted = ctx.Err() != nil
	if len(rep.Cases) == 0 && len(rep.Errors) == 0 && !rep.Interrupted {
		// An empty selection proves nothing: it is an error, never a PASS.
		var msg string
		if only != nil {
			msg = fmt.Sprintf("no matrix case named %q on %s (names look like UpdateThread/step-7-commit/pgerr=40001; see the matrix report)", o.caseName, o.backend)
		} else {
			msg = "no case matches -run " + o.run
			if o.shard.n > 1 {
				msg += " in -shard " + o.shard.String()
			}
			msg += " (names look like UpdateThread/step-7-commit/pgerr=40001; see the matrix report)"
		}
		rep.Errors = append(rep.Errors, msg)
		fmt.Fprintf(e.stderr, "%s %s: %s\n", e.prog, name, msg)
	}
	return finish(e, o, rep)
}

// selectsOperation reports whether the selection (-case, or -run as go test reads it: the
// part before the first '/' matches the operation) may name a case of operation op.
func selectsOperation(o *options, op string) bool {
	if o.caseName != "" {
		before, _, _ := strings.Cut(o.caseName, "/")
		return before == op
	}
	if o.runRE == nil {
		return true
	}
	first, _, found := strings.Cut(o.run, "/")
	if !found {
		return true // the pattern may match any part of any name
	}
	re, err := regexp.Compile(first)
	return err != nil || re.MatchString(op)
}

func runMatrixBackend(ctx context.Context, name string, o *options, e *env, cfg scenarios.Config, ops []scenarios.Operation, rep *report.Report) error {
	type opRunner struct {
		r     *scenarios.Runner
		cases []scenarios.Case
	}
	var runners []opRunner
	defer func() {
		for _, r := range runners {
			r.r.Close()
		}
	}()
	total := 0
	for _, op := range ops {
		if ctx.Err() != nil {
			return nil
		}
		// An operation that fails with no fault armed has no matrix: only its clean case,
		// whose findings say what broke. That case runs whenever the selection names the
		// operation, so a broken recording is a failure, never an empty PASS.
		var broken bool
		opCfg := cfg
		opCfg.Only = func(c scenarios.Case) bool {
			return cfg.Only == nil || cfg.Only(c) || (broken && c.Step == 0 && selectsOperation(o, c.Operation))
		}
		r, err := scenarios.NewRunner(ctx, opCfg, op)
		if err != nil {
			return fmt.Errorf("%s: %w", op.Name, err)
		}
		broken = r.Broken() != nil
		cases := r.Cases()
		total += len(cases)
		runners = append(runners, opRunner{r, cases})
	}
	var done, fired, failed atomic.Int64
	mode := o.progress
	if mode == "" {
		mode = "auto"
	}
	p := newProgress(e.stdout, mode, e.isTerminal, fmt.Sprintf("%s %s", name, cfg.Backend), int64(total), 0, e.now, func() counts {
		return counts{Ops: done.Load(), Faults: fired.Load(), Violations: failed.Load()}
	})
	p.Run(ctx)
	defer p.Stop()
	for _, or := range runners {
		if ctx.Err() != nil {
			return nil
		}
		results := or.r.RunCases(ctx, or.cases, o.parallel, func(res scenarios.Result) {
			done.Add(1)
			if res.Fired {
				fired.Add(1)
			}
			if res.Failed() {
				failed.Add(1)
			}
		})
		if ctx.Err() != nil {
			return nil // cut short by Ctrl-C: not a finding
		}
		for _, res := range results {
			if name == "replay" {
				fmt.Fprintf(e.stdout, "%s: %d finding(s); the operation returned %v\n", res.Case, len(res.Findings), res.Err)
				for _, f := range res.Findings {
					fmt.Fprintln(e.stdout, f.Error())
				}
			}
			rep.AddResult(res)
			rep.Cases[len(rep.Cases)-1].Replay = caseReplay(res.Case, o) // a passing case's too
		}
	}
	return nil
}
