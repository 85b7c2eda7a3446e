package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/redact"
)

// env is what a subcommand may touch of the outside world: everything else comes in flags.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	isTerminal     bool
}

type command struct {
	name    string
	flags   int
	summary string
	run     func(ctx context.Context, o *options, e *env) int
}

func commands() []command {
	return []command{
		{"matrix", fBackend | fPostgres | fReports | fMatrix, "the full step × fault matrix on sqlmock and/or Postgres", runMatrix},
		{"chaos", fBackend | fPostgres | fChaos | fReports, "a concurrent seeded run with random faults, server chaos and a data-safety ledger", runChaos},
		{"replay", fBackend | fPostgres | fChaos | fReports | fReplay, "rerun one matrix case (-case) or one chaos seed (-seed) exactly", runReplay},
		{"serve", fPostgres | fServe, "the thread HTTP API on a real Postgres, faults armed, /debug/sessions", runServe},
		{"summary", fFiles, "print report.json files as one line each: cases or operations, faults, violations, time", runSummary},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sessionsafe <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-7s %s\n", "mutate", mutateSummary)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'sessionsafe <command> -h' for its flags. Exit codes: 0 clean, 1 violations, 2 usage/setup error or interrupted, 3 replay did not reproduce.")
}

// Main runs the command line os.Args names, stopping at the first SIGINT or SIGTERM, and
// returns the exit code for the caller to pass to os.Exit.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
}

// run is the whole program, minus os.Exit: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	// The interrupt notice is written from its own goroutine, beside the run's own errors.
	stderr = &lockedWriter{w: stderr}
	e := &env{stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now, isTerminal: isTerminal(stdout)}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	case "mutate":
		return runMutate(ctx, args[1:], e)
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		o := &options{args: append([]string{c.name}, args[1:]...)}
		fs := flagSet(c.name, c.flags, o, getenv, io.Discard)
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stdout, "usage: sessionsafe %s [flags]\n\n%s.\n\nflags:\n", c.name, c.summary)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return exitOK
			}
			fmt.Fprintf(stderr, "sessionsafe %s: %s (see sessionsafe %s -h)\n", c.name, redact.Text(oneLine(err.Error())), c.name)
			return exitUsage
		}
		if err := o.validate(fs); err != nil {
			fmt.Fprintf(stderr, "sessionsafe %s: %s\n", c.name, redact.Text(err.Error()))
			return exitUsage
		}
		what := "stopping, writing the partial report, cleaning up"
		if c.name == "serve" {
			what = "draining requests, checking for leaks, cleaning up"
		}
		noticed := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(noticed)
			fmt.Fprintf(stderr, "\nsessionsafe %s: interrupted: %s\n", c.name, what)
		})
		code := c.run(ctx, o, e)
		if !stop() {
			<-noticed // the notice is being written: let it finish before returning
		}
		return code
	}
	fmt.Fprintf(stderr, "sessionsafe: unknown command %q; want one of %s\n", args[0], commandNames())
	return exitUsage
}

func commandNames() string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

// fail prints a one-line error for err (redacted) and returns its exit code.
func (e *env) fail(cmd string, err error) int {
	fmt.Fprintf(e.stderr, "sessionsafe %s: %s\n", cmd, redact.Text(oneLine(err.Error())))
	return exitUsage
}

// lockedWriter serialises the writes of several goroutines to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
