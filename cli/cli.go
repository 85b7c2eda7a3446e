package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/redact"
)

// env is what a subcommand may touch of the outside world: everything else comes in flags.
type env struct {
	prog           string // the program's name, as its replay commands call it
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
		{"matrix", fCatalog | fBackend | fPostgres | fReports | fMatrix, "the full step × fault matrix on sqlmock and/or Postgres", runMatrix},
		{"chaos", fCatalog | fBackend | fPostgres | fChaos | fReports, "a concurrent seeded run with random faults, server chaos and a data-safety ledger", runChaos},
		{"replay", fCatalog | fBackend | fPostgres | fChaos | fReports | fReplay, "rerun one matrix case (-case) or one chaos seed (-seed) exactly", runReplay},
		{"serve", fCatalog | fPostgres | fServe, "the catalog's HTTP API on a real Postgres, faults armed, /debug/sessions", runServe},
		{"summary", fFiles, "print report.json files as one line each: cases or operations, faults, violations, time", runSummary},
	}
}

func usage(w io.Writer, prog string, cats []Catalog) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n", prog)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-7s %s\n", "mutate", mutateSummary)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "catalogs (-catalog NAME; the first by default):")
	for _, c := range cats {
		fmt.Fprintf(w, "  %-7s %s\n", c.Name, describe(c))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Run '%s <command> -h' for its flags. Exit codes: 0 clean, 1 violations, 2 usage/setup error or interrupted, 3 replay did not reproduce.\n", prog)
}

// describe says in one line what c has.
func describe(c Catalog) string {
	var sql, pgx int
	for _, op := range c.Operations {
		if op.RunPgx != nil {
			pgx++
		} else {
			sql++
		}
	}
	s := fmt.Sprintf("%d database/sql and %d pgx operations", sql, pgx)
	if c.Handler != nil {
		s += "; serve"
	}
	if c.Chaos != nil {
		s += "; chaos on Postgres"
	}
	return s
}

// Main runs the command line os.Args names on the catalogs, stopping at the first SIGINT or
// SIGTERM, and returns the exit code for the caller to pass to os.Exit:
//
//	func main() { os.Exit(cli.Main(myCatalog)) }
//
// With several catalogs, -catalog NAME picks one (the first by default). Replay commands
// in the output and the reports name the program as os.Args[0] does.
func Main(catalogs ...Catalog) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args, os.Stdout, os.Stderr, catalogs...)
}

// Run is [Main] for a test or a program of its own: args is the whole command line, the
// program's name first (as os.Args); the run stops when ctx ends (as at Ctrl-C); the
// environment comes from os.Getenv. It returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, catalogs ...Catalog) int {
	prog := "sessionsafe"
	if len(args) > 0 {
		if args[0] != "" {
			prog = filepath.Base(args[0])
		}
		args = args[1:]
	}
	return program{name: prog, catalogs: catalogs}.run(ctx, args, stdout, stderr, os.Getenv)
}

// program is one command line: its name and catalogs.
type program struct {
	name     string
	catalogs []Catalog
}

// run is the whole program, minus os.Exit: it returns the exit code.
func (p program) run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	// The interrupt notice is written from its own goroutine, beside the run's own errors.
	stderr = &lockedWriter{w: stderr}
	if err := checkCatalogs(p.catalogs); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.name, err)
		return exitUsage
	}
	e := &env{prog: p.name, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now, isTerminal: isTerminal(stdout)}
	if len(args) == 0 {
		usage(stderr, p.name, p.catalogs)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout, p.name, p.catalogs)
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
				fmt.Fprintf(stdout, "usage: %s %s [flags]\n\n%s.\n\nflags:\n", p.name, c.name, c.summary)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return exitOK
			}
			fmt.Fprintf(stderr, "%s %s: %s (see %s %s -h)\n", p.name, c.name, redact.Text(oneLine(err.Error())), p.name, c.name)
			return exitUsage
		}
		if err := o.validate(fs); err != nil {
			fmt.Fprintf(stderr, "%s %s: %s\n", p.name, c.name, redact.Text(err.Error()))
			return exitUsage
		}
		if c.flags&fCatalog != 0 {
			cat, err := findCatalog(p.catalogs, o.catalogName)
			if err == nil {
				err = o.checkCatalog(cat)
			}
			if err != nil {
				fmt.Fprintf(stderr, "%s %s: %s\n", p.name, c.name, err)
				return exitUsage
			}
			o.cat, o.prog, o.catalogArg = cat, p.name, ""
			if len(p.catalogs) > 1 {
				o.catalogArg = " -catalog " + cat.Name
			}
		}
		what := "stopping, writing the partial report, cleaning up"
		if c.name == "serve" {
			what = "draining requests, checking for leaks, cleaning up"
		}
		noticed := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(noticed)
			fmt.Fprintf(stderr, "\n%s %s: interrupted: %s\n", p.name, c.name, what)
		})
		code := c.run(ctx, o, e)
		if !stop() {
			<-noticed // the notice is being written: let it finish before returning
		}
		return code
	}
	fmt.Fprintf(stderr, "%s: unknown command %q; want one of %s\n", p.name, args[0], commandNames())
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
	fmt.Fprintf(e.stderr, "%s %s: %s\n", e.prog, cmd, redact.Text(oneLine(err.Error())))
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
