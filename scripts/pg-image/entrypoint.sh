#!/bin/sh
# Entrypoint of sessionsafe/postgres:local: the part of the official image's contract that
# testcontainers' postgres module uses. On first start it makes the cluster serve
# POSTGRES_USER (default postgres) with POSTGRES_PASSWORD (scram-sha-256 over TCP; trust when
# empty) and the database POSTGRES_DB; then it runs the command ("postgres -c fsync=off").
# The image ships a cluster initialised at build time for the user postgres (marked by
# $PGDATA/.unconfigured): for that user, first start only sets the password and creates the
# database (single-user mode, no initdb). Another user gets a fresh initdb.
# Unlike the official image it runs no init server, so the ready line is printed once.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ "$user" != postgres ] && [ -f "$PGDATA/.unconfigured" ]; then
	# The shipped cluster is for the user postgres; another user's lives next to it (emptying
	# the shipped one in place trips over overlayfs).
	PGDATA=$(dirname "$PGDATA")/data-$user
	mkdir -p "$PGDATA"
	chmod 0700 "$PGDATA"
fi
export PGDATA
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	initdb -D "$PGDATA" -U "$user" -A trust --no-locale -E UTF8 --no-sync --wal-segsize=1 >/dev/null
	touch "$PGDATA/.unconfigured"
fi
if [ "${1:-}" = postgres ] && [ -f "$PGDATA/.unconfigured" ]; then
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		method=scram-sha-256
		quoted=$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")
		sql="ALTER ROLE \"$user\" PASSWORD '$quoted';"
	else
		echo "entrypoint: POSTGRES_PASSWORD is empty: every connection is trusted" >&2
		method=trust
		sql=""
	fi
	if [ "$db" != postgres ]; then
		sql="$sql
CREATE DATABASE \"$db\";"
	fi
	if [ -n "$sql" ]; then
		printf '%s\n' "$sql" | postgres --single -D "$PGDATA" -c password_encryption=scram-sha-256 postgres >/dev/null
	fi
	printf 'local all all trust\nhost all all all %s\n' "$method" >"$PGDATA/pg_hba.conf"
	printf "listen_addresses = '*'\nunix_socket_directories = '/var/run/postgresql'\n" >>"$PGDATA/postgresql.conf"
	rm -f "$PGDATA/.unconfigured"
fi
exec "$@"
