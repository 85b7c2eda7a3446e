package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/report"
)

func noEnv(string) string { return "" }

// runCLI runs the program in-process and returns its exit code and output.
func runCLI(t testing.TB, ctx context.Context, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut, getenv)
	return code, out.String(), errOut.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		want     int
		contains string // in stderr (or stdout for help)
	}{
		{"no-args", nil, nil, exitUsage, "usage: sessionsafe"},
		{"help", []string{"-h"}, nil, exitOK, "commands:"},
		{"unknown-command", []string{"frobnicate"}, nil, exitUsage, `unknown command "frobnicate"`},
		{"subcommand-help", []string{"chaos", "-h"}, nil, exitOK, "-workers"},
		{"help-hides-env-dsn", []string{"chaos", "-h"}, map[string]string{"SESSIONSAFE_PG_DSN": "postgres://app:hunter22@db/app"}, exitOK, "-dsn"},
		{"unknown-flag", []string{"chaos", "-bogus"}, nil, exitUsage, "-bogus"},
		{"bad-int", []string{"chaos", "-workers", "many"}, nil, exitUsage, "-workers"},
		{"bad-seed", []string{"chaos", "-seed", "abc"}, nil, exitUsage, "-seed"},
		{"workers-zero", []string{"chaos", "-workers", "0"}, nil, exitUsage, "-workers 0"},
		{"backend", []string{"chaos", "-backend", "oracle"}, nil, exitUsage, `-backend "oracle"`},
		{"provider", []string{"matrix", "-provider", "cloud"}, nil, exitUsage, `-provider "cloud"`},
		{"provider-dsn-without-dsn", []string{"chaos", "-provider", "dsn"}, nil, exitUsage, "-provider dsn: needs -dsn"},
		{"dsn-bad", []string{"chaos", "-dsn", "postgres://app:hunter22@db:notaport/app"}, nil, exitUsage, "-dsn postgres://app:xxxxx@db:notaport/app"},
		{"dsn-bad-raw-space", []string{"chaos", "-dsn", "postgres://app:hunter 22@db/app"}, nil, exitUsage, "-dsn postgres://app:xxxxx@db/app"},
		{"dsn-bad-keyword-value", []string{"chaos", "-dsn", `host=db password='hunter\'s 22' port=x`}, nil, exitUsage, "password=xxxxx"},
		{"dsn-bad-from-env", []string{"chaos"}, map[string]string{"SESSIONSAFE_PG_DSN": "postgres://app:hunter22@db:99999999/app"}, exitUsage, "-dsn"},
		{"dsn-and-other-provider", []string{"chaos", "-provider", "local", "-dsn", "postgres://app:hunter22@db/app"}, nil, exitUsage, "-dsn and -provider local"},
		{"fault-rate", []string{"chaos", "-fault-rate", "1.5"}, nil, exitUsage, "-fault-rate 1.5"},
		{"fault-rate-nan", []string{"chaos", "-fault-rate", "NaN"}, nil, exitUsage, "-fault-rate NaN"},
		{"fault-rate-inf", []string{"chaos", "-fault-rate", "+Inf"}, nil, exitUsage, "-fault-rate +Inf"},
		{"fault-rate-negative", []string{"chaos", "-fault-rate", "-0.1"}, nil, exitUsage, "-fault-rate -0.1"},
		{"replay-fault-rate-nan", []string{"replay", "-seed", "1", "-fault-rate", "nan"}, nil, exitUsage, "-fault-rate NaN"},
		{"serve-fault-rate-nan", []string{"serve", "-fault-rate", "NaN"}, nil, exitUsage, "-fault-rate NaN"},
		{"serve-fault-rate-above-one", []string{"serve", "-fault-rate", "1.5"}, nil, exitUsage, "-fault-rate 1.5"},
		{"negative-duration", []string{"chaos", "-duration", "-1s"}, nil, exitUsage, "-duration -1s"},
		{"negative-terminate-every", []string{"chaos", "-terminate-every", "-1s"}, nil, exitUsage, "-terminate-every -1s"},
		{"negative-restart-every", []string{"chaos", "-restart-every", "-1s"}, nil, exitUsage, "-restart-every -1s"},
		{"negative-pause-every", []string{"chaos", "-pause-every", "-1s"}, nil, exitUsage, "-pause-every -1s"},
		{"never-ends", []string{"chaos", "-duration", "0"}, nil, exitUsage, "-duration 0 and -ops 0"},
		{"negative-ops", []string{"chaos", "-ops", "-3"}, nil, exitUsage, "-ops -3"},
		{"op-timeout-zero", []string{"chaos", "-op-timeout", "0"}, nil, exitUsage, "-op-timeout 0s: must be positive"},
		{"op-timeout-negative", []string{"replay", "-seed", "1", "-op-timeout", "-2s"}, nil, exitUsage, "-op-timeout -2s: must be positive"},
		{"op-timeout-bad", []string{"chaos", "-op-timeout", "soon"}, nil, exitUsage, "-op-timeout"},
		{"progress", []string{"chaos", "-progress", "fancy"}, nil, exitUsage, `-progress "fancy"`},
		{"faults-at", []string{"replay", "-seed", "1", "-faults-at", "1,x"}, nil, exitUsage, "-faults-at"},
		{"server-chaos-on-sqlmock", []string{"chaos", "-backend", "sqlmock", "-terminate-every", "1s"}, nil, exitUsage, "server chaos needs -backend postgres"},
		{"restart-on-dsn", []string{"chaos", "-backend", "postgres", "-dsn", "postgres://u@h/db", "-restart-every", "1s"}, nil, exitUsage, "-restart-every"},
		{"shard-format", []string{"matrix", "-shard", "2"}, nil, exitUsage, `-shard "2"`},
		{"shard-range", []string{"matrix", "-shard", "3/2"}, nil, exitUsage, `-shard "3/2"`},
		{"parallel-zero", []string{"matrix", "-parallel", "0"}, nil, exitUsage, `-parallel 0: want 1 or more`},
		{"run-regexp", []string{"matrix", "-run", "("}, nil, exitUsage, `-run "("`},
		{"positional", []string{"matrix", "extra"}, nil, exitUsage, `unexpected argument "extra"`},
		{"empty-report-path", []string{"matrix", "-report-json", ""}, nil, exitUsage, "-report-json: empty path"},
		{"replay-needs-target", []string{"replay"}, nil, exitUsage, "want -case NAME"},
		{"replay-both", []string{"replay", "-case", "x", "-seed", "1"}, nil, exitUsage, "give one of them"},
		{"serve-plan", []string{"serve", "-plan", "step=x:boom"}, nil, exitUsage, "-plan"},
		{"serve-pool", []string{"serve", "-pool-size", "0"}, nil, exitUsage, "-pool-size 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			code, stdout, stderr := runCLI(t, context.Background(), getenv, tt.args...)
			if code != tt.want {
				t.Errorf("sessionsafe %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.want, stdout, stderr)
			}
			all := stdout + stderr
			if !strings.Contains(all, tt.contains) {
				t.Errorf("sessionsafe %s: output lacks %q:\n%s", strings.Join(tt.args, " "), tt.contains, all)
			}
			if strings.Contains(all, "hunter") || strings.Contains(all, "22@") {
				t.Errorf("sessionsafe %s: the DSN password appears in the output:\n%s", strings.Join(tt.args, " "), all)
			}
			if code == exitUsage && tt.want == exitUsage {
				if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 && !strings.Contains(stderr, "usage:") {
					t.Errorf("want a one-line error; got %d lines:\n%s", lines, stderr)
				}
			}
		})
	}
}

func TestShardSplitsEveryCaseOnce(t *testing.T) {
	var names []string
	for op := 0; op < 8; op++ {
		for step := 0; step < 15; step++ {
			for _, f := range []string{"error", "badconn", "pgerr=40001", "cancel", "panic"} {
				names = append(names, fmt.Sprintf("Op%d/step-%d-query/%s", op, step, f))
			}
		}
	}
	for _, n := range []int{1, 2, 3, 4, 7} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			counts := make([]int, n)
			for _, name := range names {
				hits := 0
				for i := 1; i <= n; i++ {
					if inShard(name, shard{i, n}) {
						hits++
						counts[i-1]++
					}
				}
				if hits != 1 {
					t.Fatalf("case %s falls in %d shards of %d; want exactly 1", name, hits, n)
				}
			}
			for i, c := range counts {
				if c < len(names)/n/2 {
					t.Errorf("shard %d/%d holds %d of %d cases: badly unbalanced (%v)", i+1, n, c, len(names), counts)
				}
			}
		})
	}
}

// TestReplayCommandParses checks the printed replay command parses back into the same run.
func TestReplayCommandParses(t *testing.T) {
	tests := []struct {
		name string
		cfg  chaos.Config
	}{
		{"ops", chaos.Config{Seed: 42, Workers: 1, Ops: 7, FaultRate: 0.05}},
		{"shrunk", chaos.Config{Seed: -3, Workers: 1, Ops: 18, From: 17, FaultRate: 0.1, FaultsAt: []int{17}}},
		{"no-faults", chaos.Config{Seed: 5, Workers: 2, Ops: 9, FaultRate: 0}},
		{"duration-and-chaos", chaos.Config{Seed: 8, Workers: 8, Duration: 30 * time.Second, FaultRate: 0.03, TerminateEvery: 2 * time.Second}},
		{"op-timeout", chaos.Config{Seed: 9, Workers: 400, Ops: 800, FaultRate: 0.03, OpTimeout: 45 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := replayCommand(&options{prog: "sessionsafe", catalogArg: " -catalog threads"}, "postgres", tt.cfg)
			fields := strings.Fields(cmd)
			if fields[0] != "sessionsafe" || fields[1] != "replay" {
				t.Fatalf("replay command %q does not start with sessionsafe replay", cmd)
			}
			o := &options{}
			fs := flagSet("replay", fCatalog|fBackend|fPostgres|fChaos|fReports|fReplay, o, noEnv, io.Discard)
			if err := fs.Parse(fields[2:]); err != nil {
				t.Fatalf("parse %q: %v", cmd, err)
			}
			if o.catalogName != "threads" {
				t.Errorf("replay command %q: catalog %q; want threads", cmd, o.catalogName)
			}
			if err := o.validate(fs); err != nil {
				t.Fatalf("validate %q: %v", cmd, err)
			}
			got := chaosConfig(o)
			want := tt.cfg
			want.Panics = true // the CLI's runs inject panics
			if want.FaultRate == 0 {
				want.FaultsAt = nil
			}
			if fmt.Sprint(got.Seed, got.Workers, got.Ops, got.Duration, got.From, got.FaultRate, got.FaultsAt, got.TerminateEvery, got.OpTimeout) !=
				fmt.Sprint(want.Seed, want.Workers, want.Ops, want.Duration, want.From, want.FaultRate, want.FaultsAt, want.TerminateEvery, want.OpTimeout) {
				t.Errorf("replay %q parses to %+v; want %+v", cmd, got, want)
			}
		})
	}
}

func TestProgress(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base
	clock := func() time.Time { return now }
	snap := func() counts { return counts{Ops: 250, Faults: 12, Violations: 1} }
	tests := []struct {
		name  string
		mode  string
		tty   bool
		total int64
		dur   time.Duration
		want  []string
	}{
		{"bar-on-terminal", "auto", true, 1000, 0, []string{"[=======", "25%", "250 ops (25/s)", "12 faults", "1 violations", "ETA 30s"}},
		{"lines-when-piped", "auto", false, 0, 40 * time.Second, []string{"chaos: ", "25%", "250 ops", "ETA 30s"}},
		{"forced-lines", "lines", true, 1000, 0, []string{"chaos:  25%"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = base
			p := newProgress(io.Discard, tt.mode, tt.tty, "chaos", tt.total, tt.dur, clock, snap)
			now = base.Add(10 * time.Second)
			line := p.line(snap(), false)
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("progress line %q lacks %q", line, w)
				}
			}
			if strings.Contains(line, "[") != p.bar {
				t.Errorf("progress line %q: bar=%v", line, p.bar)
			}
		})
	}
}

func TestProgressStops(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "lines", false, "matrix", 10, 0, time.Now, func() counts { return counts{Ops: 10} })
	ctx, cancel := context.WithCancel(context.Background())
	p.Run(ctx)
	cancel()
	p.Stop()
	if !strings.Contains(buf.String(), "100%") || !strings.Contains(buf.String(), "ETA done") {
		t.Errorf("final progress line = %q; want 100%% and ETA done", buf.String())
	}
}

var _ = flag.ErrHelp

// TestSelectionNeverPassesEmpty: a selection that runs no case is an error (exit 2), and an
// operation whose clean recording fails is a failure (exit 1) even when the selection names
// only cases its broken recording has none of.
// TestReplayNotReproduced: a replay that passes says it did not reproduce the violation and
// exits 3 — neither the clean run of 0 nor the violation of 1.
func TestReplayNotReproduced(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
		says string
	}{
		{"case-passes", []string{"replay", "-backend", "sqlmock", "-case", "UpdateThread/step-5-commit/pgerr=40001"}, exitNotReproduced, "NOT REPRODUCED: replay did not reproduce the violation"},
		{"seed-passes", []string{"replay", "-backend", "sqlmock", "-seed", "1", "-workers", "1", "-ops", "3", "-progress", "off"}, exitNotReproduced, "NOT REPRODUCED: replay did not reproduce the violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, context.Background(), noEnv, tt.args...)
			if code != tt.want {
				t.Errorf("sessionsafe %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.want, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.says) || strings.Contains(stdout, "PASS") {
				t.Errorf("sessionsafe %s: want %q and no PASS in the output:\n%s", strings.Join(tt.args, " "), tt.says, stdout)
			}
		})
	}
}

func TestSelectionNeverPassesEmpty(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     int
		contains string
	}{
		{"run-matches-nothing", []string{"matrix", "-backend", "sqlmock", "-run", "NoSuchCase"}, exitUsage, "no case matches -run NoSuchCase"},
		{"run-matches-nothing-in-shard", []string{"matrix", "-backend", "sqlmock", "-run", "NoSuchCase", "-shard", "1/2"}, exitUsage, "no case matches -run NoSuchCase in -shard 1/2"},
		{"replay-no-such-case", []string{"replay", "-backend", "sqlmock", "-case", "NoSuchCase/step-1-query/pgerr=40001"}, exitUsage, `no matrix case named "NoSuchCase/step-1-query/pgerr=40001"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, context.Background(), noEnv, tt.args...)
			if code != tt.want {
				t.Errorf("sessionsafe %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.want, stdout, stderr)
			}
			if all := stdout + stderr; !strings.Contains(all, tt.contains) || strings.Contains(all, "PASS") {
				t.Errorf("sessionsafe %s: want %q and no PASS in the output:\n%s", strings.Join(tt.args, " "), tt.contains, all)
			}
		})
	}
}

// TestMatrixSummaryCountsFaults: the matrix report counts the faults its cases fired (every
// case but the clean one arms one), not zero.
func TestMatrixSummaryCountsFaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runCLI(t, context.Background(), noEnv, "matrix", "-backend", "sqlmock", "-run", "^GetThread/", "-report-json", path)
	if code != exitOK {
		t.Fatalf("exit %d; want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var rep report.Report
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	fired := 0
	for _, c := range rep.Cases {
		if c.Fired {
			fired++
		}
	}
	if fired == 0 || rep.Summary.Faults != int64(fired) || fired != rep.Summary.Cases-1 {
		t.Errorf("summary faults %d, cases fired %d, cases %d: want every faulted case fired and counted", rep.Summary.Faults, fired, rep.Summary.Cases)
	}
}

// TestSetupErrorShowsCause: a server that cannot be reached prints why on the terminal (the
// driver puts the cause on the error's later lines), not only in the JSON report.
func TestSetupErrorShowsCause(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"matrix", []string{"matrix", "-backend", "postgres", "-dsn", "postgres://u:hunter22@127.0.0.1:1/db"}},
		{"chaos", []string{"chaos", "-backend", "postgres", "-ops", "1", "-dsn", "postgres://u:hunter22@127.0.0.1:1/db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, context.Background(), noEnv, tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d; want %d", code, exitUsage)
			}
			for _, out := range []string{stderr, stdout} {
				if !strings.Contains(out, "connection refused") {
					t.Errorf("output lacks the cause %q:\n%s", "connection refused", out)
				}
				if strings.Contains(out, "hunter22") {
					t.Errorf("output shows the password:\n%s", out)
				}
			}
		})
	}
}

// TestInterruptedSetupIsNoSetupError: a run interrupted while it connects to Postgres is
// reported as interrupted, not as a setup error ("context canceled").
func TestInterruptedSetupIsNoSetupError(t *testing.T) {
	for _, cmd := range []string{"matrix", "chaos"} {
		t.Run(cmd, func(t *testing.T) {
			// A server that accepts and never answers: the interrupt comes while connecting.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				cancel()
				_, _ = io.Copy(io.Discard, conn)
			}()
			args := []string{cmd, "-backend", "postgres", "-dsn", "postgres://u@" + ln.Addr().String() + "/db?sslmode=disable"}
			if cmd == "chaos" {
				args = append(args, "-ops", "1")
			}
			code, stdout, stderr := runCLI(t, ctx, noEnv, args...)
			if code != exitUsage || !strings.Contains(stdout, "INTERRUPTED") || strings.Contains(stdout+stderr, "ERROR") {
				t.Errorf("exit %d; want %d, INTERRUPTED and no ERROR:\nstdout: %s\nstderr: %s", code, exitUsage, stdout, stderr)
			}
		})
	}
}
