# sessionsafe — see README.md. Every target installs or starts what it needs.
GO        ?= go
PKGS      ?= ./...
# The Postgres image the Docker provider runs; `make pg-image` builds it offline
# from this machine's PostgreSQL installation.
PG_IMAGE  ?= sessionsafe/postgres:local
# The testcontainers reaper (Ryuk) is an image of its own; sessionsafe cleans up
# its containers itself, so the reaper is off unless you turn it back on.
export TESTCONTAINERS_RYUK_DISABLED ?= true

.PHONY: all test lint bench bench-all pg-image chaos chaos-nightly

# PG_VIA prints (as a shell command in a recipe) where the Postgres of a run comes from, as
# pgtest will choose it: SESSIONSAFE_PG_PROVIDER when set, else the DSN, the image, or what
# is left (Docker's default image when Docker is reachable, else local binaries).
PG_VIA = case "$${SESSIONSAFE_PG_PROVIDER:-auto}" in \
	auto) if [ -n "$$SESSIONSAFE_PG_DSN" ]; then echo "the server of SESSIONSAFE_PG_DSN"; \
		elif [ -n "$$SESSIONSAFE_PG_IMAGE" ]; then echo "Docker ($$SESSIONSAFE_PG_IMAGE)"; \
		else echo "Docker, else local PostgreSQL binaries"; fi;; \
	*) echo "the $$SESSIONSAFE_PG_PROVIDER provider";; esac

# TEST_TIMEOUT bounds a whole test binary (go test's -timeout). Every wait inside a test has
# a deadline of its own and names what it waited for; this is only the package's budget,
# and the largest packages (the bank, the thread suite) run their real-Postgres matrices
# under the race detector for longer than go test's default 10 minutes on a loaded 2-core machine.
TEST_TIMEOUT ?= 30m
# TEST_PARALLEL is go test's -parallel: how many tests marked t.Parallel run at once in a
# package. The parallel tests are the planted-bug ones, whose time is mostly checks waiting
# out their deadlines on leaks that never end, so they overlap well beyond the CPU count
# (go test's default): the bank's tests alone 251 s -> 163 s at 8. Every wait has a
# deadline sized to the load, and the suite is checked beside a CPU hog, so more at once
# costs time, never a verdict.
TEST_PARALLEL ?= 8
# TEST_P is go test's -p: how many packages' tests run at once. Twice the CPU count (go
# test's default is the CPU count): a package's tests keep about half a core busy on average,
# waiting on Postgres and on check deadlines the rest of the time. On 2 cores, with a warm
# build cache: 3 m 39 s at -p 2, 2 m 58 s at -p 4.
TEST_P ?= $(shell echo $$(( 2 * $$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1) )))

all: lint test

## test: the whole suite, under the race detector, sqlmock and real Postgres.
## Provisions Postgres itself: with Docker reachable it builds $(PG_IMAGE) (quick when
## unchanged) and the Docker provider serves; otherwise pgtest falls back to the local
## PostgreSQL binaries (or SESSIONSAFE_PG_DSN when set). Prints which provider served each package.
test:
	@set -e; \
	if [ -z "$$SESSIONSAFE_PG_IMAGE" ] || [ "$$SESSIONSAFE_PG_IMAGE" = "$(PG_IMAGE)" ]; then \
		if docker info >/dev/null 2>&1; then \
			echo "make test: checking the Postgres image $(PG_IMAGE) (built from this machine's PostgreSQL; quick when unchanged)"; \
			if scripts/pg-image.sh $(PG_IMAGE); then export SESSIONSAFE_PG_IMAGE=$(PG_IMAGE); \
			else echo "make test: could not build $(PG_IMAGE); pgtest falls back to local PostgreSQL binaries"; fi; \
		else echo "make test: Docker not reachable; pgtest uses local PostgreSQL binaries (or SESSIONSAFE_PG_DSN)"; fi; \
	fi; \
	report=$$(mktemp); export SESSIONSAFE_PG_REPORT=$$report; status=0; \
	n=$$($(GO) list $(PKGS) | wc -l); via=$$($(PG_VIA)); \
	echo "make test: go test -race: $$n packages, sqlmock and a real Postgres (via $$via)"; \
	echo "make test: a package's result prints only when the whole package ends: the first after a minute or so, handlers and threadsuite last"; \
	echo "$(GO) test -race -count=1 -p $(TEST_P) -parallel $(TEST_PARALLEL) -timeout $(TEST_TIMEOUT) $(PKGS)"; \
	$(GO) test -race -count=1 -p $(TEST_P) -parallel $(TEST_PARALLEL) -timeout $(TEST_TIMEOUT) $(PKGS) || status=$$?; \
	echo "--- Postgres servers started by pgtest (one line per package and provider):"; \
	cat $$report; rm -f $$report; exit $$status

## pg-image: build $(PG_IMAGE) from this machine's PostgreSQL, pulling nothing.
pg-image:
	scripts/pg-image.sh $(PG_IMAGE)

## lint: go vet, gofmt, staticcheck (with its unused check) and go mod tidy must all be clean.
## staticcheck is a tool of the module (go.mod's tool directive): `go tool` builds the pinned
## version, nothing to install.
lint:
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff

## bench: the figures BENCHMARKS.md keeps, five runs each (benchstat reads the output), in
## minutes rather than hours: the recording cost paired with the bare wrapper on one pool
## (faults), the cost of each check (leakcheck, the session check), the harness against the
## bare operation and its parts, and the matrix throughput (threadsuite). Postgres as for
## `make test`. BENCH_OUT names the file the results go to; `make bench-all` runs every
## benchmark of every package instead.
BENCH_COUNT ?= 5
BENCH_OUT   ?= bench.txt
bench:
	@set -e; : > $(BENCH_OUT); uptime | tee -a $(BENCH_OUT); \
	run() { echo "$(GO) test -run '^$$' $$*"; $(GO) test -run '^$$' "$$@" > $(BENCH_OUT).part 2>&1 || { cat $(BENCH_OUT).part; exit 1; }; \
		grep -v '^20[0-9][0-9]/' $(BENCH_OUT).part | tee -a $(BENCH_OUT); rm -f $(BENCH_OUT).part; }; \
	run -bench 'PassThroughPaired|PassThroughNop|PgxInjectorPaired' -benchtime 3000x -benchmem -count $(BENCH_COUNT) ./faults; \
	run -bench 'ChecksClean' -benchmem -count $(BENCH_COUNT) ./leakcheck; \
	run -bench 'SessionCheck' -benchtime 200x -count $(BENCH_COUNT) ./scenarios; \
	run -bench 'HarnessRatio|HarnessParts' -benchtime 100x -count $(BENCH_COUNT) ./threadsuite; \
	run -bench 'Matrix' -benchtime 1x -count $(BENCH_COUNT) ./threadsuite; \
	uptime | tee -a $(BENCH_OUT); echo "make bench: results in $(BENCH_OUT); compare two with benchstat (go install golang.org/x/perf/cmd/benchstat@latest): benchstat old.txt $(BENCH_OUT)"

bench-all:
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) $(PKGS)

## chaos: the main command. The fault matrix (every step x every fault of the eight
## operations) on sqlmock and on a real Postgres it provisions itself (as `make test` does:
## the offline image when Docker is reachable, else local PostgreSQL binaries, or
## SESSIONSAFE_PG_DSN), then a short seeded chaos run on both, then the bank's chaos
## workloads (examples/bank, its database/sql and pgx stores: money conserved, no
## acknowledged transfer lost, no leak); prints a summary and the report paths (JSON,
## JUnit XML, HTML). Exit 1 on any violation.
CHAOS_DIR   ?= reports
CHAOS_FLAGS ?= -duration 20s -workers 8 -fault-rate 0.03
chaos:
	@$(MAKE) --no-print-directory _chaos CHAOS_RUN='$(CHAOS_FLAGS)'

## chaos-nightly: the long form: 10 minutes at 32 workers with server chaos (backends
## terminated, the server restarted and paused) on top of the full matrix.
CHAOS_NIGHTLY_FLAGS ?= -duration 10m -workers 32 -fault-rate 0.03 -terminate-every 7s -restart-every 97s -pause-every 41s
chaos-nightly:
	@$(MAKE) --no-print-directory _chaos CHAOS_RUN='$(CHAOS_NIGHTLY_FLAGS)' CHAOS_CHAOS_BACKEND=postgres

CHAOS_CHAOS_BACKEND ?= both
_chaos:
	@set -e; \
	if [ -z "$$SESSIONSAFE_PG_DSN" ] && { [ -z "$$SESSIONSAFE_PG_IMAGE" ] || [ "$$SESSIONSAFE_PG_IMAGE" = "$(PG_IMAGE)" ]; }; then \
		if docker info >/dev/null 2>&1; then \
			echo "make chaos: checking the Postgres image $(PG_IMAGE) (built from this machine's PostgreSQL; quick when unchanged)"; \
			if scripts/pg-image.sh $(PG_IMAGE); then export SESSIONSAFE_PG_IMAGE=$(PG_IMAGE); \
			else echo "make chaos: could not build $(PG_IMAGE); falling back to local PostgreSQL binaries"; export SESSIONSAFE_PG_PROVIDER=$${SESSIONSAFE_PG_PROVIDER:-local}; fi; \
		else echo "make chaos: Docker not reachable; using local PostgreSQL binaries (or SESSIONSAFE_PG_DSN)"; fi; \
	fi; \
	echo "make chaos: building bin/sessionsafe"; \
	$(GO) build -o bin/sessionsafe ./cmd/sessionsafe; \
	rm -f $(CHAOS_DIR)/matrix/report.json $(CHAOS_DIR)/chaos/report.json; \
	status=0; via=$$($(PG_VIA)); \
	echo "make chaos: 1/3 the fault matrix: every step x every fault of the eight operations, on sqlmock, then on Postgres via $$via (started first); about a minute"; \
	echo "bin/sessionsafe matrix -backend both -report-dir $(CHAOS_DIR)/matrix"; \
	bin/sessionsafe matrix -backend both -report-dir $(CHAOS_DIR)/matrix || status=$$?; \
	if [ $$status -ge 2 ]; then \
		echo "make chaos: the matrix did not complete (exit $$status: interrupted or could not run); the chaos run is not started"; \
	else \
		echo "make chaos: 2/3 the chaos run: seeded random operations and faults from many workers at once ($(CHAOS_RUN)), backend $(CHAOS_CHAOS_BACKEND)"; \
		echo "bin/sessionsafe chaos -backend $(CHAOS_CHAOS_BACKEND) $(CHAOS_RUN) -report-dir $(CHAOS_DIR)/chaos"; \
		bin/sessionsafe chaos -backend $(CHAOS_CHAOS_BACKEND) $(CHAOS_RUN) -report-dir $(CHAOS_DIR)/chaos || { s=$$?; [ $$s -gt $$status ] && status=$$s; true; }; \
		echo "make chaos: 3/3 the bank under chaos: its database/sql and pgx stores, 4 workers, 200 operations each"; \
		echo "$(GO) test -count=1 -run '^TestChaos$$' -v ./examples/bank"; \
		bank=0; out=$$($(GO) test -count=1 -run '^TestChaos$$' -v ./examples/bank 2>&1) || bank=1; \
		echo "$$out" | grep -E '^(\s*--- |ok|FAIL|\s+chaos_test.go.*(seed|violation|replay))' || true; \
		if [ $$bank -ne 0 ] && [ $$status -lt 1 ]; then status=1; fi; \
	fi; \
	echo; echo "=== make chaos: summary"; \
	for d in matrix chaos; do \
		f=$(CHAOS_DIR)/$$d/report.json; \
		if [ -f $$f ]; then \
			bin/sessionsafe summary $$f || true; \
			echo "        $(CHAOS_DIR)/$$d/report.html  $(CHAOS_DIR)/$$d/report.json  $(CHAOS_DIR)/$$d/junit.xml"; \
		fi; \
	done; \
	case $$status in 0) echo "make chaos: PASS";; 1) echo "make chaos: FAIL (violations: see the replay commands above)";; *) echo "make chaos: ERROR (setup or interrupted; exit $$status)";; esac; \
	exit $$status
