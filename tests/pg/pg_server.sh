#!/usr/bin/env bash
# pg_server.sh -- a throwaway PostgreSQL for the tests and benchmarks of the postgres backend.
#
#   pg_server.sh start STATE   initdb + start on a free port in a fresh temp folder; writes STATE
#                              (a shell file: PG_URL, PG_ADMIN_URL, PG_PORT, PG_DATA, ...) and
#                              STATE.url (the URL of the "postgres" database, for tests to read)
#   pg_server.sh stop STATE    stop it and delete the temp folder
#   pg_server.sh crash STATE   pg_ctl stop -m immediate (a crash, as far as clients can tell)
#   pg_server.sh restart STATE start it again after crash/stop, same port and data
#   pg_server.sh newdb STATE NAME   (re)create database NAME owned by the test role; prints its URL
#
# Runs the server as the `postgres` OS user when called as root (PostgreSQL refuses root), installs
# the Debian package if no server binaries are found. TCP on 127.0.0.1 with a password (so tests can
# check that no message ever shows it) and a unix socket inside the temp folder.
set -euo pipefail

die() { echo "pg_server.sh: $*" >&2; exit 1; }

find_bindir() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && { echo "$d"; return 0; }
	done
	return 1
}

ensure_installed() {
	if ! find_bindir >/dev/null; then
		[ "$(id -u)" = 0 ] || die "PostgreSQL server binaries not found and not root to install them"
		echo "pg_server.sh: installing postgresql" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq postgresql >&2
	fi
	find_bindir >/dev/null || die "no initdb after installing postgresql"
}

# Run a command as the server's OS user.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

load_state() {
	[ -f "$1" ] || die "no state file $1 (was the server started?)"
	# shellcheck disable=SC1090
	. "$1"
}

psql_admin() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_TMP" -p "$PG_PORT" -U postgres -d postgres "$@"; }

start() {
	local state=$1 bindir tmp port pw
	# A server left by an interrupted run (or a repeated start) is stopped first, not leaked.
	[ -f "$state" ] && stop "$state" >/dev/null
	ensure_installed
	bindir=$(find_bindir)
	tmp=$(mktemp -d /tmp/coffer-pg.XXXXXX)
	if [ "$(id -u)" = 0 ]; then chown postgres: "$tmp"; fi
	chmod 700 "$tmp"
	as_pg "$bindir/initdb" -D "$tmp/data" -U postgres --auth-local=trust \
		--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$tmp/initdb.log" 2>&1 ||
		{ cat "$tmp/initdb.log" >&2; die "initdb failed"; }
	# A fixed password: the server is throwaway and reachable from this machine only.
	pw='coffer-test-Pw7q'
	# Ports from a base derived from the state path, so parallel builds rarely collide.
	port=$((20000 + $(printf '%s' "$state" | cksum | cut -d' ' -f1) % 20000))
	local tries=0
	while :; do
		tries=$((tries + 1))
		[ $tries -le 40 ] || die "no free port found"
		if port_busy "$port"; then port=$((port + 1)); continue; fi
		cat >>"$tmp/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$tmp'
max_connections = 200
log_min_messages = warning
CONF
		if as_pg "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start >/dev/null; then
			break
		fi
		port=$((port + 1))
	done
	cat >"$state" <<ST
PG_BIN='$bindir'
PG_TMP='$tmp'
PG_DATA='$tmp/data'
PG_PORT='$port'
PG_USER='coffer'
PG_PASSWORD='$pw'
PG_ADMIN_URL='postgresql://coffer:$pw@127.0.0.1:$port/postgres'
ST
	load_state "$state"
	psql_admin -c "CREATE ROLE coffer LOGIN CREATEDB PASSWORD '$pw'"
	printf '%s\n' "$PG_ADMIN_URL" >"$state.url"
	echo "pg_server.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $tmp"
}

stop() {
	local state=$1
	[ -f "$state" ] || { echo "pg_server.sh: nothing to stop"; return 0; }
	load_state "$state"
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	case "$PG_TMP" in /tmp/coffer-pg.*) rm -rf "$PG_TMP" ;; esac
	rm -f "$state" "$state.url"
}

crash() {
	load_state "$1"
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 60 stop >/dev/null
}

restart() {
	load_state "$1"
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_TMP/server.log" -w -t 60 start >/dev/null
}

newdb() {
	local state=$1 name=$2
	[[ "$name" =~ ^[a-z][a-z0-9_]{0,40}$ ]] || die "bad database name"
	load_state "$state"
	psql_admin -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name OWNER coffer"
	printf 'postgresql://coffer:%s@127.0.0.1:%s/%s\n' "$PG_PASSWORD" "$PG_PORT" "$name"
}

# Wait (30 s at most) until no session is left on database NAME: a client killed mid-COMMIT
# leaves its server process to finish (or abort) that transaction after the client is gone, so
# a check that reads the database must not begin before those sessions end.
quiesce() {
	local state=$1 name=$2 n
	[[ "$name" =~ ^[a-z][a-z0-9_]{0,40}$ ]] || die "bad database name"
	load_state "$state"
	for _ in $(seq 300); do
		n=$(psql_admin -At -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$name' AND pid <> pg_backend_pid()")
		[ "$n" = 0 ] && return 0
		sleep 0.1
	done
	die "sessions on $name still open after 30 s"
}

case "${1:-}" in
start) start "${2:?state file}" ;;
stop) stop "${2:?state file}" ;;
crash) crash "${2:?state file}" ;;
restart) restart "${2:?state file}" ;;
newdb) newdb "${2:?state file}" "${3:?database name}" ;;
quiesce) quiesce "${2:?state file}" "${3:?database name}" ;;
*) die "usage: pg_server.sh start|stop|crash|restart|newdb|quiesce STATE [NAME]" ;;
esac
