# sessionsafe — see README.md. Every target installs or starts what it needs.
GO        ?= go
PKGS      ?= ./...
# The Postgres image the Docker provider runs; `make pg-image` builds it offline
# from this machine's PostgreSQL installation.
PG_IMAGE  ?= sessionsafe/postgres:local
# The testcontainers reaper (Ryuk) is an image of its own; sessionsafe cleans up
# its containers itself, so the reaper is off unless you turn it back on.
export TESTCONTAINERS_RYUK_DISABLED ?= true

.PHONY: all test lint bench

all: lint test

## test: the whole suite, under the race detector, sqlmock and real Postgres.
test:
	$(GO) test -race -count=1 $(PKGS)

## lint: go vet, gofmt and go mod tidy must all be clean.
lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff

## bench: every benchmark, five runs each, for benchstat.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS)
