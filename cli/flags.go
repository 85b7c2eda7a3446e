package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessionsafe/sessionsafe/internal/redact"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/report"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// Exit codes.
const (
	exitOK         = 0 // clean
	exitViolations = 1 // a violation was found
	exitUsage      = 2 // bad usage, setup failure, or an interrupted run
	// exitNotReproduced: replay ran to the end and passed — it did not reproduce what it
	// was asked to, which is neither a clean bill (0) nor the violation (1).
	exitNotReproduced = 3
)

// usageError is a bad flag or argument: one line, exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// setupError is a failure to get what the run needs (a Postgres, a port): exit code 2.
type setupError struct{ err error }

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// shard is one slice i of n of the matrix (1-based, as -shard 2/4 is written).
type shard struct{ i, n int }

func (s shard) String() string {
	if s.n <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.i, s.n)
}

func parseShard(v string) (shard, error) {
	i, n, ok := strings.Cut(v, "/")
	if !ok {
		return shard{}, fmt.Errorf("want i/n, e.g. 2/4")
	}
	ii, err1 := strconv.Atoi(i)
	nn, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || nn < 1 || ii < 1 || ii > nn {
		return shard{}, fmt.Errorf("want i/n with 1 <= i <= n, e.g. 2/4")
	}
	return shard{ii, nn}, nil
}

// options is every flag of every subcommand; each subcommand registers the ones it reads.
type options struct {
	cmd  string
	args []string // the command line, for the report (redacted there)

	prog        string // the program's name, for replay commands
	catalogName string
	cat         *Catalog // the catalog -catalog names
	catalogArg  string   // " -catalog NAME" when the program has several, for replay commands

	backend  string
	provider string
	dsn      string
	envDSN   string

	seed     int64
	seedSet  bool
	duration time.Duration
	ops      int
	workers  int

	faultRate      float64
	opTimeout      time.Duration
	terminateEvery time.Duration
	restartEvery   time.Duration
	pauseEvery     time.Duration
	plan           string

	reportJSON, reportJUnit, reportHTML, reportDir string

	shardRaw string
	shard    shard
	parallel int
	run      string
	runRE    *regexp.Regexp
	caseName string

	from     int
	faultsAt string
	shrink   bool
	progress string
	verbose  bool

	addr     string
	poolSize int

	files []string // the arguments of a command that takes files

	set        map[string]bool // the flags given on the command line
	takesFiles bool
}

func (o *options) reportPaths() report.Paths {
	p := report.Paths{JSON: o.reportJSON, JUnit: o.reportJUnit, HTML: o.reportHTML}
	if o.reportDir != "" {
		d := report.InDir(o.reportDir)
		if p.JSON == "" {
			p.JSON = d.JSON
		}
		if p.JUnit == "" {
			p.JUnit = d.JUnit
		}
		if p.HTML == "" {
			p.HTML = d.HTML
		}
	}
	return p
}

// backends returns the backends the -backend flag names. Left to its default, it leaves
// out a backend the catalog cannot run on (sqlmock without golden traces, Postgres chaos
// without a workload); checkCatalog refuses one named explicitly.
func (o *options) backends() []string {
	switch o.backend {
	case "both":
		var out []string
		for _, b := range []string{"sqlmock", "postgres"} {
			if o.cat == nil || o.catalogRuns(b) == nil {
				out = append(out, b)
			}
		}
		return out
	default:
		return []string{o.backend}
	}
}

// catalogRuns says why the catalog cannot run this command on backend b (nil: it can).
func (o *options) catalogRuns(b string) error {
	chaos := o.cmd == "chaos" || (o.cmd == "replay" && o.seedSet)
	switch {
	case b == "sqlmock" && o.cat.Golden == nil:
		return usagef("catalog %s has no golden traces (Catalog.Golden): it runs on postgres only", o.cat.Name)
	case b == "sqlmock" && chaos && len(o.cat.sqlmockOperations()) == 0:
		return usagef("catalog %s has no database/sql operation for chaos on sqlmock", o.cat.Name)
	case b == "postgres" && chaos && o.cat.Chaos == nil:
		return usagef("catalog %s has no chaos workload on postgres (Catalog.Chaos): use -backend sqlmock", o.cat.Name)
	}
	return nil
}

// checkCatalog refuses a command the catalog cannot run: a backend named on the command
// line it lacks what for, serve without a Handler.
func (o *options) checkCatalog(c *Catalog) error {
	o.cat = c
	if o.cmd == "serve" && c.Handler == nil {
		return usagef("catalog %s has no HTTP API to serve (Catalog.Handler)", c.Name)
	}
	if o.set["backend"] && o.backend != "both" {
		return o.catalogRuns(o.backend)
	}
	if len(o.backends()) == 0 {
		return usagef("catalog %s can run %s on no backend: %v; %v", c.Name, o.cmd, o.catalogRuns("sqlmock"), o.catalogRuns("postgres"))
	}
	if o.set["backend"] {
		for _, b := range []string{"sqlmock", "postgres"} {
			if err := o.catalogRuns(b); err != nil {
				return fmt.Errorf("-backend both: %w", err)
			}
		}
	}
	return nil
}

const (
	fBackend = 1 << iota
	fPostgres
	fChaos
	fReports
	fMatrix
	fReplay
	fServe
	fFiles   // takes file arguments after the flags
	fCatalog // runs a catalog
)

// flagSet builds the flag set of one subcommand into o. getenv supplies the defaults read
// from the environment (SESSIONSAFE_PG_PROVIDER, SESSIONSAFE_PG_DSN).
func flagSet(cmd string, which int, o *options, getenv func(string) string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sessionsafe "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	o.cmd = cmd
	o.takesFiles = which&fFiles != 0
	if which&fCatalog != 0 {
		fs.StringVar(&o.catalogName, "catalog", "", "the catalog to run, by name (default: the first; see -h of the program)")
	}
	if which&fBackend != 0 {
		fs.StringVar(&o.backend, "backend", "both", "where the catalog runs: sqlmock, postgres or both")
	}
	if which&fPostgres != 0 {
		prov := getenv("SESSIONSAFE_PG_PROVIDER")
		if prov == "" {
			prov = "auto"
		}
		fs.StringVar(&o.provider, "provider", prov, "how to get a Postgres: auto, docker, local or dsn (default from SESSIONSAFE_PG_PROVIDER)")
		// Not the flag's default: -h would print the DSN, password and all.
		o.envDSN = getenv("SESSIONSAFE_PG_DSN")
		fs.StringVar(&o.dsn, "dsn", "", "a Postgres DSN to run against (implies -provider dsn; default from SESSIONSAFE_PG_DSN)")
	}
	if which&fChaos != 0 {
		fs.Func("seed", "the run's seed (default: from the clock, printed)", func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return errors.New("want an integer")
			}
			o.seed, o.seedSet = n, true
			return nil
		})
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (0: until -ops); with server chaos, also until each kind asked for has acted once")
		fs.IntVar(&o.ops, "ops", 0, "how many operations in all (0: until -duration)")
		fs.IntVar(&o.workers, "workers", 8, "concurrent workers")
		fs.Float64Var(&o.faultRate, "fault-rate", 0.03, "probability of a fault at each driver step, 0..1")
		fs.DurationVar(&o.opTimeout, "op-timeout", 0, "an operation still running after this long, not counting time queued for a connection, is a violation (default: 5s per 4 workers per CPU, at most 2m)")
		fs.DurationVar(&o.terminateEvery, "terminate-every", 0, "server chaos: terminate a random backend of the run this often (postgres; 0: never)")
		fs.DurationVar(&o.restartEvery, "restart-every", 0, "server chaos: restart the server this often (docker or local provider; 0: never)")
		fs.DurationVar(&o.pauseEvery, "pause-every", 0, "server chaos: pause the whole server for 100-300ms this often (docker or local provider; 0: never)")
		fs.BoolVar(&o.shrink, "shrink", true, "on a violation, shrink to the smallest still-failing run and print its replay command")
		fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, lines otherwise), bar, lines or off")
		fs.IntVar(&o.from, "from", 0, "replay: start at this operation index of each worker's stream")
		fs.StringVar(&o.faultsAt, "faults-at", "", "replay: keep the faults of these operation indices only (comma separated; empty: all)")
	}
	if which&fReports != 0 {
		fs.StringVar(&o.reportJSON, "report-json", "", "write the JSON report to this file")
		fs.StringVar(&o.reportJUnit, "report-junit", "", "write the JUnit XML report to this file")
		fs.StringVar(&o.reportHTML, "report-html", "", "write the HTML report to this file")
		fs.StringVar(&o.reportDir, "report-dir", "", "write report.json, junit.xml and report.html into this directory")
	}
	if which&fMatrix != 0 {
		fs.StringVar(&o.shardRaw, "shard", "", "run only shard i of n of the matrix cases, e.g. 2/4 (deterministic)")
		fs.StringVar(&o.run, "run", "", "run only the matrix cases whose name matches this regexp")
		fs.IntVar(&o.parallel, "parallel", scenarios.DefaultParallel(), "matrix cases run at once, each on a pool and application_name of its own; the default is the CPU count")
	}
	if which&fReplay != 0 {
		fs.StringVar(&o.caseName, "case", "", "the matrix case to replay, e.g. UpdateThread/step-3-commit/pgerr=40001")
	}
	if which&fServe != 0 {
		fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
		fs.Float64Var(&o.faultRate, "fault-rate", 0, "probability of a fault at each driver step, 0..1")
		fs.StringVar(&o.plan, "plan", "", "a fault plan armed for every request, e.g. match=commit#1:pgerr=40001")
		fs.IntVar(&o.poolSize, "pool-size", 10, "maximum open connections of the server's pool")
		fs.Func("seed", "seed of the random faults (default: from the clock, printed)", func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return errors.New("want an integer")
			}
			o.seed, o.seedSet = n, true
			return nil
		})
	}
	fs.BoolVar(&o.verbose, "v", false, "verbose: log every injected fault and finding")
	return fs
}

// validate checks the flag values once parsed; the first bad one is a usage error naming it.
func (o *options) validate(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.set = set
	if set["ops"] && !set["duration"] {
		// A number of operations alone bounds the run: no clock, so a replay is exact.
		o.duration = 0
	}
	has := func(name string) bool { return fs.Lookup(name) != nil }
	if has("backend") {
		switch o.backend {
		case "sqlmock", "postgres", "both":
		default:
			return usagef("-backend %q: want sqlmock, postgres or both", o.backend)
		}
	}
	if has("provider") {
		switch o.provider {
		case "auto", "docker", "local", "dsn":
		default:
			return usagef("-provider %q: want auto, docker, local or dsn", o.provider)
		}
		if set["dsn"] && o.dsn == "" {
			return usagef("-dsn: empty")
		}
		if !set["dsn"] {
			o.dsn = o.envDSN
		}
		if o.dsn != "" {
			if _, err := pgconn.ParseConfig(o.dsn); err != nil {
				return usagef("-dsn %s: %s", pgtest.RedactDSN(o.dsn), redact.NewSecrets(o.dsn).Hide(oneLine(err.Error())))
			}
			if set["provider"] && o.provider != "dsn" && o.provider != "auto" && set["dsn"] {
				return usagef("-dsn and -provider %s: a DSN needs -provider dsn (or auto)", o.provider)
			}
			if set["dsn"] || o.provider == "auto" {
				o.provider = "dsn"
			}
		} else if o.provider == "dsn" {
			return usagef("-provider dsn: needs -dsn (or SESSIONSAFE_PG_DSN)")
		}
	}
	if has("workers") {
		if o.workers < 1 || o.workers > 1024 {
			return usagef("-workers %d: want 1..1024", o.workers)
		}
		if o.duration < 0 {
			return usagef("-duration %s: must not be negative", o.duration)
		}
		if o.ops < 0 {
			return usagef("-ops %d: must not be negative", o.ops)
		}
		if set["op-timeout"] && o.opTimeout <= 0 {
			return usagef("-op-timeout %s: must be positive (leave it out for the default, which grows with -workers)", o.opTimeout)
		}
		if o.duration == 0 && o.ops == 0 {
			return usagef("-duration 0 and -ops 0: the run would never end; set one of them")
		}
		for name, d := range map[string]time.Duration{"terminate-every": o.terminateEvery, "restart-every": o.restartEvery, "pause-every": o.pauseEvery} {
			if d < 0 {
				return usagef("-%s %s: must not be negative", name, d)
			}
		}
		switch o.progress {
		case "auto", "bar", "lines", "off":
		default:
			return usagef("-progress %q: want auto, bar, lines or off", o.progress)
		}
		if o.from < 0 {
			return usagef("-from %d: must not be negative", o.from)
		}
		if _, err := parseIndices(o.faultsAt); err != nil {
			return usagef("-faults-at %q: %v", o.faultsAt, err)
		}
		if (o.terminateEvery > 0 || o.restartEvery > 0 || o.pauseEvery > 0) && o.backend == "sqlmock" {
			return usagef("-terminate-every/-restart-every/-pause-every: server chaos needs -backend postgres or both")
		}
		if (o.restartEvery > 0 || o.pauseEvery > 0) && o.provider == "dsn" {
			return usagef("-restart-every/-pause-every: cannot restart or pause a server given by -dsn; use -provider local or docker")
		}
	}
	// Written as "not inside" so that NaN, which compares false with everything, fails too.
	if has("fault-rate") && !(o.faultRate >= 0 && o.faultRate <= 1) {
		return usagef("-fault-rate %g: want a probability in 0..1", o.faultRate)
	}
	if has("parallel") && o.parallel < 1 {
		return usagef("-parallel %d: want 1 or more", o.parallel)
	}
	if has("shard") && o.shardRaw != "" {
		s, err := parseShard(o.shardRaw)
		if err != nil {
			return usagef("-shard %q: %v", o.shardRaw, err)
		}
		o.shard = s
	}
	if has("run") && o.run != "" {
		re, err := regexp.Compile(o.run)
		if err != nil {
			return usagef("-run %q: %v", o.run, oneLine(err.Error()))
		}
		o.runRE = re
	}
	if has("pool-size") && o.poolSize < 1 {
		return usagef("-pool-size %d: want at least 1", o.poolSize)
	}
	if has("addr") && o.addr == "" {
		return usagef("-addr: empty")
	}
	for name, p := range map[string]string{"report-json": o.reportJSON, "report-junit": o.reportJUnit, "report-html": o.reportHTML} {
		if set[name] && p == "" {
			return usagef("-%s: empty path", name)
		}
	}
	if o.takesFiles {
		o.files = fs.Args()
		return nil
	}
	if n := fs.NArg(); n > 0 {
		return usagef("unexpected argument %q (flags come before nothing else)", fs.Arg(0))
	}
	return nil
}

// parseIndices parses "3,7,12" into its numbers; "" is nil.
func parseIndices(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("want comma-separated operation indices, e.g. 3,7")
		}
		out = append(out, n)
	}
	return out, nil
}

// oneLine folds a multi-line error into one line, so that the cause a driver puts on the
// lines after the first ("dial tcp 127.0.0.1:1: connect: connection refused") reaches the
// terminal: its lines are trimmed and joined, repeated lines once.
func oneLine(s string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || seen[line] {
			continue
		}
		seen[line] = true
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(line)
	}
	return b.String()
}
