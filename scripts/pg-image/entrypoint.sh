#!/bin/sh
# Entrypoint of sessionsafe/postgres:local: the part of the official image's contract that
# testcontainers' postgres module uses. On first start it creates the cluster for
# POSTGRES_USER (default postgres) with POSTGRES_PASSWORD (scram-sha-256 over TCP; trust when
# empty) and the database POSTGRES_DB; then it runs the command ("postgres -c fsync=off").
# Unlike the official image it runs no init server, so the ready line is printed once.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	user=${POSTGRES_USER:-postgres}
	db=${POSTGRES_DB:-$user}
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		pwfile=$(mktemp)
		printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
		initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
			--no-locale -E UTF8 --no-sync >/dev/null
		rm -f "$pwfile"
		method=scram-sha-256
	else
		echo "entrypoint: POSTGRES_PASSWORD is empty: every connection is trusted" >&2
		initdb -D "$PGDATA" -U "$user" -A trust --no-locale -E UTF8 --no-sync >/dev/null
		method=trust
	fi
	printf 'host all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
	printf "listen_addresses = '*'\nunix_socket_directories = '/var/run/postgresql'\n" >>"$PGDATA/postgresql.conf"
	if [ "$db" != postgres ]; then
		echo "CREATE DATABASE \"$db\";" | postgres --single -D "$PGDATA" postgres >/dev/null
	fi
fi
exec "$@"
