package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/redact"
	"github.com/sessionsafe/sessionsafe/mutate"
	"github.com/sessionsafe/sessionsafe/report"
)

const mutateSummary = "plant session bugs in Go packages, one at a time, and report which the tests catch"

// runMutate is `sessionsafe mutate [flags] [packages]`. It parses its own flags: unlike the
// other subcommands it takes arguments (package patterns) and needs no Postgres.
func runMutate(ctx context.Context, args []string, e *env) int {
	fs := flag.NewFlagSet("sessionsafe mutate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	test := fs.String("test", "", `the test command run for every mutant, e.g. "go test ./threadsuite -run TestMatrix" (split at spaces, with '' and "" quoting as a shell does; default: go test on each mutated package and the packages of its module whose tests import it)`)
	parallel := fs.Int("parallel", max(runtime.GOMAXPROCS(0)/2, 1), "mutants tested at once")
	shardRaw := fs.String("shard", "", "run only shard i of n of the mutants, e.g. 2/8 (deterministic by mutant id)")
	ops := fs.String("operators", "", "only these operators, comma separated (default: all; see the list below)")
	timeout := fs.Duration("timeout", 0, "bound on each mutant's test run (0: three times the clean run plus 5m)")
	var o options // the report flags, as the other subcommands name them
	fs.StringVar(&o.reportJSON, "report-json", "", "write the JSON report (schema "+mutate.SchemaV1+") to this file")
	fs.StringVar(&o.reportJUnit, "report-junit", "", "write the JUnit XML report (a test case per mutant) to this file")
	fs.StringVar(&o.reportHTML, "report-html", "", "write the HTML report to this file")
	fs.StringVar(&o.reportDir, "report-dir", "", "write report.json, junit.xml and report.html into this directory")
	list := fs.Bool("list", false, "print the mutants (with -v, their diffs) without running anything")
	verbose := fs.Bool("v", false, "verbose: with -list, print each mutant's diff")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(e.stdout, "usage: %s mutate [flags] [packages]\n\n%s.\nPackages are go patterns (default ./...).\n\nflags:\n", e.prog, mutateSummary)
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			fmt.Fprintln(e.stdout, "\noperators:")
			for _, op := range mutate.Operators() {
				fmt.Fprintf(e.stdout, "  %-26s %s\n", op.ID, op.Description)
			}
			fmt.Fprintln(e.stdout, "\nExit codes: 0 no mutant survived, 1 a mutant survived, 2 usage/setup error or interrupted.")
			return exitOK
		}
		fmt.Fprintf(e.stderr, "%s mutate: %s (see %s mutate -h)\n", e.prog, redact.Text(oneLine(err.Error())), e.prog)
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var (
		findOpts []mutate.Option
		runOpts  = []mutate.Option{mutate.WithParallel(*parallel)}
		sh       = shard{1, 1}
	)
	if *parallel < 1 {
		return e.fail("mutate", usagef("-parallel %d: want at least 1", *parallel))
	}
	if *shardRaw != "" {
		s, err := parseShard(*shardRaw)
		if err != nil {
			return e.fail("mutate", usagef("-shard %q: %v", *shardRaw, err))
		}
		sh = s
		runOpts = append(runOpts, mutate.WithShard(s.i, s.n))
	}
	if set["test"] {
		cmd, err := splitCommand(*test)
		if err != nil {
			return e.fail("mutate", usagef("-test: %v", err))
		}
		if len(cmd) == 0 {
			return e.fail("mutate", usagef("-test: empty command"))
		}
		runOpts = append(runOpts, mutate.WithTest(cmd))
	}
	if *timeout < 0 {
		return e.fail("mutate", usagef("-timeout %s: must not be negative", *timeout))
	}
	if *timeout > 0 {
		runOpts = append(runOpts, mutate.WithTimeout(*timeout))
	}
	if *ops != "" {
		known := map[string]bool{}
		var all []string
		for _, op := range mutate.Operators() {
			known[op.ID] = true
			all = append(all, op.ID)
		}
		var ids []string
		for _, id := range strings.Split(*ops, ",") {
			id = strings.TrimSpace(id)
			if !known[id] {
				return e.fail("mutate", usagef("-operators: unknown operator %q; want one of %s", id, strings.Join(all, ", ")))
			}
			ids = append(ids, id)
		}
		findOpts = append(findOpts, mutate.WithOperators(ids...))
	}
	for _, f := range []struct{ name, value string }{
		{"report-json", o.reportJSON}, {"report-junit", o.reportJUnit}, {"report-html", o.reportHTML}, {"report-dir", o.reportDir},
	} {
		if set[f.name] && f.value == "" {
			return e.fail("mutate", usagef("-%s: empty path", f.name))
		}
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}

	ms, err := mutate.Find(ctx, patterns, findOpts...)
	if err != nil {
		return e.fail("mutate", err)
	}
	if *list {
		n := 0
		for _, m := range ms {
			if mutate.ShardOf(m.ID, sh.n) != sh.i {
				continue
			}
			n++
			if m.Equivalent != "" {
				fmt.Fprintf(e.stdout, "%s  (marked equivalent: %s)\n", m.ID, m.Equivalent)
			} else {
				fmt.Fprintln(e.stdout, m.ID)
			}
			if *verbose {
				fmt.Fprint(e.stdout, indent(m.Diff, "    "))
			}
		}
		fmt.Fprintf(e.stdout, "%d mutants%s\n", n, shardNote(sh))
		return exitOK
	}

	start := time.Now()
	runOpts = append(runOpts, mutate.WithProgress(func(r mutate.Result, done, total int) {
		what := string(r.Status)
		switch r.Status {
		case mutate.Killed:
			what += " by " + r.KilledBy
		case mutate.NotCovered:
			what += ": " + r.Reason
		}
		fmt.Fprintf(e.stderr, "[%d/%d] %s: %s (%s)\n", done, total, r.ID, what, r.Duration.Round(100*time.Millisecond))
	}))
	fmt.Fprintf(e.stderr, "%s mutate: %d mutants%s, %d at a time; clean run first\n", e.prog, countShard(ms, sh), shardNote(sh), *parallel)
	rep, err := mutate.Run(ctx, ms, runOpts...)
	interrupted := ctx.Err() != nil
	if err != nil && !interrupted {
		return e.fail("mutate", err)
	}
	if len(rep.Results) > 0 || interrupted {
		if werr := rep.WriteText(e.stdout); werr != nil {
			return e.fail("mutate", werr)
		}
	}
	written, werr := writeMutateReports(o.reportPaths(), rep)
	if len(written) > 0 {
		fmt.Fprintf(e.stderr, "%s mutate: report written to %s\n", e.prog, strings.Join(written, ", "))
	}
	if werr != nil {
		return e.fail("mutate", werr)
	}
	if interrupted {
		fmt.Fprintf(e.stderr, "%s mutate: interrupted after %s: the report is partial\n", e.prog, time.Since(start).Round(time.Second))
		return exitUsage
	}
	if rep.Summary.Survived > 0 {
		return exitViolations
	}
	return exitOK
}

// writeMutateReports writes rep to every path set in p, each renamed into place once
// complete, and returns the paths written.
func writeMutateReports(p report.Paths, rep mutate.Report) ([]string, error) {
	var written []string
	for _, f := range []struct {
		path  string
		write func(io.Writer) error
	}{{p.JSON, rep.WriteJSON}, {p.JUnit, rep.WriteJUnit}, {p.HTML, rep.WriteHTML}} {
		if f.path == "" {
			continue
		}
		if err := report.WriteFile(f.path, f.write); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}

func countShard(ms []mutate.Mutant, sh shard) int {
	n := 0
	for _, m := range ms {
		if mutate.ShardOf(m.ID, sh.n) == sh.i {
			n++
		}
	}
	return n
}

func shardNote(sh shard) string {
	if sh.n <= 1 {
		return ""
	}
	return " in shard " + sh.String()
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

// splitCommand splits a command line into words as a POSIX shell does for plain words:
// at unquoted blanks, with '...' taken literally, "..." keeping blanks (a backslash escapes
// " and \ in it) and a backslash outside quotes escaping the next character. It expands
// nothing: no variables, no globs.
func splitCommand(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			in = true
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
