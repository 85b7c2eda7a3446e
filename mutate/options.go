package mutate

import (
	"fmt"
	"runtime"
	"time"
)

// Option configures Find or Run. Each option says which of the two reads it; giving one to
// the other is an error.
type Option func(*config)

type config struct {
	dir       string
	operators []string
	test      []string
	testFor   func(Mutant) []string
	parallel  int
	timeout   time.Duration
	shardI    int
	shardN    int
	progress  func(Result, int, int)

	given map[string]bool // the options given, by name, to reject a misplaced one
}

func defaults() *config {
	return &config{
		dir:      ".",
		parallel: max(runtime.GOMAXPROCS(0)/2, 1),
		shardI:   1,
		shardN:   1,
		given:    map[string]bool{},
	}
}

func newConfig(op string, allowed []string, opts []Option) (*config, error) {
	c := defaults()
	for _, o := range opts {
		o(c)
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for name := range c.given {
		if !ok[name] {
			return nil, fmt.Errorf("mutate: %s: option %s does not apply here", op, name)
		}
	}
	if c.parallel < 1 {
		return nil, fmt.Errorf("mutate: %s: WithParallel(%d): want at least 1", op, c.parallel)
	}
	if c.shardN < 1 || c.shardI < 1 || c.shardI > c.shardN {
		return nil, fmt.Errorf("mutate: %s: WithShard(%d, %d): want 1 <= i <= n", op, c.shardI, c.shardN)
	}
	if c.timeout < 0 {
		return nil, fmt.Errorf("mutate: %s: WithTimeout(%s): must not be negative", op, c.timeout)
	}
	if c.given["WithTest"] && len(c.test) == 0 {
		return nil, fmt.Errorf("mutate: %s: WithTest: empty command", op)
	}
	return c, nil
}

// WithDir sets the directory packages are loaded from and tests run in (Find and Run;
// default: the current directory). Patterns given to Find are relative to it.
func WithDir(dir string) Option {
	return func(c *config) { c.dir, c.given["WithDir"] = dir, true }
}

// WithOperators keeps only the operators with these ids (Find; default: all of Operators()).
// An unknown id is an error.
func WithOperators(ids ...string) Option {
	return func(c *config) { c.operators, c.given["WithOperators"] = ids, true }
}

// WithTest runs this command for every mutant instead of go test on the mutated package and
// its importers (Run), e.g. []string{"go", "test", "./threadsuite", "-run", "TestMatrix"}.
// The overlay and -count=1 reach it through GOFLAGS, so it must run the go tool.
func WithTest(cmd []string) Option {
	return func(c *config) { c.test, c.given["WithTest"] = append([]string(nil), cmd...), true }
}

// WithTestFor runs, for each mutant, the command f returns for it (Run), e.g. only the tests
// meant to catch a hand-written mutant; where f returns nil, the command of WithTest or the
// default. Each distinct command has a clean run of its own, as with WithTest.
func WithTestFor(f func(Mutant) []string) Option {
	return func(c *config) { c.testFor, c.given["WithTestFor"] = f, true }
}

// WithParallel runs up to n mutants at once (Run; default GOMAXPROCS/2, at least 1). Each
// one is a go test process of its own, which is itself parallel.
func WithParallel(n int) Option {
	return func(c *config) { c.parallel, c.given["WithParallel"] = n, true }
}

// WithTimeout bounds each mutant's test run (Run; default: three times the clean run plus
// five minutes, room for the checks of a failing run to wait out their deadlines). A mutant
// that runs longer is TimedOut.
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout, c.given["WithTimeout"] = d, true }
}

// WithShard runs only shard i of n (1-based) of the mutants (Run). A mutant's shard follows
// from its id alone, so shards are disjoint, cover every mutant and are the same on every
// machine.
func WithShard(i, n int) Option {
	return func(c *config) { c.shardI, c.shardN, c.given["WithShard"] = i, n, true }
}

// WithProgress calls f after each mutant with its result, how many are done and how many
// there are in all (Run). Calls never overlap.
func WithProgress(f func(r Result, done, total int)) Option {
	return func(c *config) { c.progress, c.given["WithProgress"] = f, true }
}
