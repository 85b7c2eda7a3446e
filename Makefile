# sessionsafe — see README.md. Every target installs or starts what it needs.
GO        ?= go
PKGS      ?= ./...
# The Postgres image the Docker provider runs; `make pg-image` builds it offline
# from this machine's PostgreSQL installation.
PG_IMAGE  ?= sessionsafe/postgres:local
# The testcontainers reaper (Ryuk) is an image of its own; sessionsafe cleans up
# its containers itself, so the reaper is off unless you turn it back on.
export TESTCONTAINERS_RYUK_DISABLED ?= true

.PHONY: all test lint bench pg-image

all: lint test

## test: the whole suite, under the race detector, sqlmock and real Postgres.
## Provisions Postgres itself: with Docker reachable it builds $(PG_IMAGE) (quick when
## unchanged) and the Docker provider serves; otherwise pgtest falls back to the local
## PostgreSQL binaries (or SESSIONSAFE_PG_DSN when set). Prints which provider served each package.
test:
	@set -e; \
	if [ -z "$$SESSIONSAFE_PG_IMAGE" ] || [ "$$SESSIONSAFE_PG_IMAGE" = "$(PG_IMAGE)" ]; then \
		if docker info >/dev/null 2>&1; then \
			if scripts/pg-image.sh $(PG_IMAGE); then export SESSIONSAFE_PG_IMAGE=$(PG_IMAGE); \
			else echo "make test: could not build $(PG_IMAGE); pgtest falls back to local PostgreSQL binaries"; fi; \
		else echo "make test: Docker not reachable; pgtest uses local PostgreSQL binaries (or SESSIONSAFE_PG_DSN)"; fi; \
	fi; \
	report=$$(mktemp); export SESSIONSAFE_PG_REPORT=$$report; status=0; \
	echo "$(GO) test -race -count=1 $(PKGS)"; \
	$(GO) test -race -count=1 $(PKGS) || status=$$?; \
	echo "--- Postgres servers started by pgtest (one line per package and provider):"; \
	cat $$report; rm -f $$report; exit $$status

## pg-image: build $(PG_IMAGE) from this machine's PostgreSQL, pulling nothing.
pg-image:
	scripts/pg-image.sh $(PG_IMAGE)

## lint: go vet, gofmt and go mod tidy must all be clean.
lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff

## bench: every benchmark, five runs each, for benchstat.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS)
