#!/usr/bin/env bash
# Builds the Docker image sessionsafe/postgres:local (or the tag given as $1) from this
# machine's own PostgreSQL installation, pulling nothing: a FROM scratch image holding the
# server programs, every library they link (ldd), the server modules without the LLVM JIT,
# the share files, zoneinfo, a static busybox as /bin/sh, a postgres user and a tiny
# entrypoint (scripts/pg-image/entrypoint.sh). Quick when nothing changed: the image carries
# a fingerprint of its inputs and is rebuilt only when it differs.
#
# Needs: docker, the PostgreSQL server binaries (pg_config --bindir, or
# /usr/lib/postgresql/*/bin), busybox (Debian: apt-get install busybox-static).
set -euo pipefail

image=${1:-sessionsafe/postgres:local}
here=$(cd "$(dirname "$0")" && pwd)
say() { echo "pg-image: $*" >&2; }

# Where PostgreSQL lives.
bindir=${PG_BINDIR:-}
if [ -z "$bindir" ] && command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/postgres" ]; then
	bindir=$(pg_config --bindir)
fi
if [ -z "$bindir" ]; then
	bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/postgres" ] || [ ! -x "$bindir/initdb" ]; then
	say "no PostgreSQL server binaries found (set PG_BINDIR, or install postgresql)"; exit 1
fi
major=$("$bindir/postgres" --version | sed -E 's/.* ([0-9]+)[.].*/\1/')
if [ -x "$bindir/pg_config" ]; then pgconfig="$bindir/pg_config"; elif command -v pg_config >/dev/null; then pgconfig=pg_config; else pgconfig=; fi
if [ -n "$pgconfig" ] && [ "$("$pgconfig" --bindir)" = "$bindir" ]; then
	pkglibdir=$("$pgconfig" --pkglibdir)
	sharedir=$("$pgconfig" --sharedir)
else
	pkglibdir=$(dirname "$bindir")/lib
	sharedir=/usr/share/postgresql/$major
fi
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
	for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && busybox=$b && break; done
fi
if [ -z "$busybox" ]; then say "busybox not found (Debian: apt-get install busybox-static)"; exit 1; fi
if ! docker info >/dev/null 2>&1; then say "docker is not reachable"; exit 1; fi

programs=("$bindir/postgres" "$bindir/initdb")
modules=()
while IFS= read -r -d '' m; do modules+=("$m"); done < <(find "$pkglibdir" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -print0)
# Every library the programs, the modules and busybox load, plus the dynamic loader.
libs=$(for f in "${programs[@]}" "${modules[@]}" "$busybox"; do ldd "$f" 2>/dev/null || true; done |
	awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' | sort -u)

fingerprint=$(
	{
		cat "$0" "$here/pg-image/Dockerfile" "$here/pg-image/entrypoint.sh"
		"$bindir/postgres" --version
		for f in "${programs[@]}" "${modules[@]}" "$busybox" $libs; do stat -L -c '%n %s %Y' "$f"; done
		find "$sharedir" -type f -printf '%p %s %T@\n' | sort
	} | sha256sum | cut -c1-16
)
current=$(docker image inspect -f '{{index .Config.Labels "org.sessionsafe.fingerprint"}}' "$image" 2>/dev/null || true)
if [ "$current" = "$fingerprint" ]; then
	say "$image is up to date (PostgreSQL $major from $bindir, fingerprint $fingerprint)"
	exit 0
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/pg-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root"/{bin,etc,tmp,usr/local/bin,usr/share} "$ctx"/pgowned/var/{lib/postgresql/data,run/postgresql}
chmod 1777 "$root/tmp"
chmod 0700 "$ctx/pgowned/var/lib/postgresql/data"
copy() { # copy a file (following links) to the same path inside the root
	mkdir -p "$root$(dirname "$1")"
	cp -L "$1" "$root$1"
}
for f in "${programs[@]}" "${modules[@]}" $libs; do copy "$f"; done
mkdir -p "$root$sharedir" "$root/usr/share/zoneinfo"
cp -a "$sharedir/." "$root$sharedir/"
cp -a /usr/share/zoneinfo/. "$root/usr/share/zoneinfo/" 2>/dev/null || say "no /usr/share/zoneinfo: the server will only know UTC"
cp -L "$busybox" "$root/bin/busybox"
for applet in sh cat cp echo env grep id ls mkdir mktemp printf ps rm sed sleep; do ln -s busybox "$root/bin/$applet"; done
cp "$here/pg-image/entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"
printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\n' >"$root/etc/group"
cp "$here/pg-image/Dockerfile" "$ctx/Dockerfile"

# A cluster initialised here, for the user postgres, so that a container starts without
# running initdb (seconds inside a container); the entrypoint finishes it (password, database).
data=$ctx/pgowned/var/lib/postgresql/data
initdb_args=(-D "$data" -U postgres -A trust --no-locale -E UTF8 --no-sync --wal-segsize=1)
preinit=
if [ "$(id -u)" -ne 0 ]; then
	"$bindir/initdb" "${initdb_args[@]}" >/dev/null 2>&1 && preinit=1
elif id postgres >/dev/null 2>&1; then
	chown -R postgres "$ctx/pgowned" && chmod 0755 "$ctx" &&
		setpriv --reuid=postgres --regid="$(id -g postgres)" --init-groups "$bindir/initdb" "${initdb_args[@]}" >/dev/null 2>&1 &&
		preinit=1
fi
if [ -n "$preinit" ]; then
	touch "$data/.unconfigured"
else
	rm -rf "${data:?}"/* && say "no cluster initialised at build time: containers run initdb on start"
fi

say "building $image from PostgreSQL $major ($bindir), $(du -sh "$root" | cut -f1) root filesystem"
# The classic builder: FROM scratch needs no registry and no BuildKit frontend image.
if ! out=$(DOCKER_BUILDKIT=0 docker build -q --pull=false -t "$image" \
	--build-arg PGBIN="$bindir" --build-arg FINGERPRINT="$fingerprint" "$ctx" 2>&1); then
	say "docker build failed:"; echo "$out" >&2; exit 1
fi
say "built $image (fingerprint $fingerprint)"
