#!/usr/bin/env bash
# pg_bench.sh -- coffer serve on PostgreSQL beside SQLite, in one run (issue 4, acceptance 5):
# Access (latest of one secret), Put (new versions of one hot secret) and Put spread over SPREAD
# (100) secrets throughput with h2load, through one server and through two servers sharing one
# store, for:
#   sqlite     a store folder (two servers: two processes on the same folder)
#   postgres   a throwaway PostgreSQL started here (tests/pg/pg_server.sh), default settings
#              (fsync on, synchronous_commit on: a put is durable when acknowledged, as on SQLite)
# The load comes from LOADERS (2) h2load processes at once, spread evenly over the servers; the
# figure is the sum of their rates. The spread puts come from SPREAD h2load processes, one per
# secret with one connection each (h2load sends one body per process), spread evenly over the
# servers: SPREAD puts in flight.
#
# Usage: bench/pg_bench.sh [ACCESS_REQUESTS]   env: COFFER_BUILD (a built tree), INFLIGHT (50),
#                                              PUTS (total puts per run, 10000), ROUNDS (2),
#                                              SPREAD (secrets of the spread puts, 100),
#                                              SPREAD_PUTS (total spread puts per run, 30000)
# Every process (servers, PostgreSQL, h2load) shares this machine's cores: read the two-server
# rows as "what one more server costs or gains here", not as a cluster figure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-100000}
inflight=${INFLIGHT:-50}
puts=${PUTS:-10000}
pgctl="$top/tests/pg/pg_server.sh"

if ! command -v h2load >/dev/null; then
	echo "installing nghttp2-client" >&2
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null
fi

build=${COFFER_BUILD:-$top/build-bench}
if [ -z "${COFFER_BUILD:-}" ]; then
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" -j"$(nproc)" --target coffer_cli >/dev/null
fi
coffer=$build/src/cli/coffer

work=$(mktemp -d /tmp/coffer-pgbench.XXXXXX)
chmod 755 "$work"
pids=()
stop_servers() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	pids=()
}
cleanup() {
	stop_servers
	"$pgctl" stop "$work/pg.state" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# A fixed master key for every store of this run (no key file beside a database).
export COFFER_MASTER_KEY=AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=
unset COFFER_PASSPHRASE COFFER_KEY_FILE COFFER_STORE

"$pgctl" start "$work/pg.state" >/dev/null
echo "allow default put,access *" >"$work/policy"
value=bleak_dearest_hanged_reigns_0123
# gRPC bodies (5-byte prefix + protobuf), as in server_bench.sh.
printf '\x00\x00\x00\x00\x17\x0a\x15\x0a\x0b\x0a\x09bench-key\x12\x06latest' >"$work/access.bin"
printf '\x00\x00\x00\x00\x2f\x0a\x0b\x0a\x09bench-put\x12\x20%s' "$value" >"$work/put.bin"
# One body per secret of the spread puts: names bench-s000..bench-s099 (9 bytes, as bench-put).
spread=${SPREAD:-100}
sputs=${SPREAD_PUTS:-30000} # the spread puts' rate includes starting SPREAD processes: run longer
[ "$spread" -ge 1 ] && [ "$spread" -le 1000 ] || { echo "SPREAD must be 1..1000" >&2; exit 2; }
for i in $(seq 0 $((spread - 1))); do
	printf '\x00\x00\x00\x00\x2f\x0a\x0b\x0a\x09bench-s%03d\x12\x20%s' "$i" "$value" >"$work/put.$i.bin"
done
hdrs=(-H 'content-type: application/grpc' -H 'te: trailers')

# Start one `coffer serve` on STORE; sets `port`. Not run in $(...): that subshell would keep
# the server's pid to itself, and stop_servers would leave the server running (each run used to
# leave every server it started behind, LISTENing on PostgreSQL and sharing the cores).
port=
start_server() {
	local store=$1 tag=$2
	port=
	"$coffer" --store "$store" serve --listen 127.0.0.1:0 --policy "$work/policy" --quiet \
		>"$work/serve.$tag.out" 2>"$work/serve.$tag.log" &
	pids+=($!)
	for _ in $(seq 300); do
		grep -q '^coffer: store' "$work/serve.$tag.out" 2>/dev/null && break
		sleep 0.1
	done
	port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$work/serve.$tag.out")
	[ -n "$port" ] || { echo "coffer serve did not start" >&2; cat "$work/serve.$tag.log" >&2; exit 1; }
}

# Run LOADERS h2load processes at once, loader i against port i mod (number of ports), each with
# an even share of REQUESTS and CONNECTIONS; prints the summed rate and the number of 2xx answers.
# The number of client processes is the same for one and two servers, so the client side is not
# what differs between the rows.
loaders=${LOADERS:-2}
load() {
	local requests=$1 conns=$2 body=$3 method=$4
	shift 4
	local ports=("$@") i
	for i in $(seq 0 $((loaders - 1))); do
		h2load -n $((requests / loaders)) -c $((conns / loaders)) -m 1 "${hdrs[@]}" -d "$body" \
			"http://127.0.0.1:${ports[i % ${#ports[@]}]}/nitric.proto.secrets.v1.SecretManager/$method" \
			>"$work/h2.$i.out" 2>&1 &
	done
	wait_h2
	local rps=0 ok=0 r o
	for i in $(seq 0 $((loaders - 1))); do
		r=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$work/h2.$i.out")
		o=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$work/h2.$i.out")
		rps=$(awk -v a="$rps" -v b="${r:-0}" 'BEGIN {printf "%.0f", a + b}')
		ok=$((ok + ${o:-0}))
	done
	echo "$rps $ok"
}

# SPREAD h2load processes at once, process i putting secret i through port i mod (number of
# ports), one connection each; prints the rate (2xx answers over the wall time from the first
# start to the last exit: the processes do not all run over the same interval, so their own
# rates do not add up) and the number of 2xx answers.
load_spread() {
	local requests=$1
	shift
	local ports=("$@") i t0 t1
	t0=$(date +%s.%N)
	for i in $(seq 0 $((spread - 1))); do
		h2load -n $((requests / spread)) -c 1 -m 1 "${hdrs[@]}" -d "$work/put.$i.bin" \
			"http://127.0.0.1:${ports[i % ${#ports[@]}]}/nitric.proto.secrets.v1.SecretManager/Put" \
			>"$work/h2s.$i.out" 2>&1 &
	done
	wait_h2
	t1=$(date +%s.%N)
	local ok=0 o
	for i in $(seq 0 $((spread - 1))); do
		o=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$work/h2s.$i.out")
		ok=$((ok + ${o:-0}))
	done
	echo "$(awk -v n="$ok" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}') $ok"
}

# Wait for the h2load jobs (and only them: the servers are jobs too).
wait_h2() {
	local p
	for p in $(jobs -p); do
		case " ${pids[*]} " in *" $p "*) ;; *) wait "$p" ;; esac
	done
}

rounds=${ROUNDS:-2}

# One measurement of STORE through COUNT servers; keeps the best of the rounds in res_*.
declare -A res ok
measure() {
	local label=$1 store=$2 count=$3 ports=() i a ao p po s so key
	"$coffer" --store "$store" put bench-key "$value" >/dev/null 2>&1
	for i in $(seq "$count"); do
		start_server "$store" "$label$i"
		ports+=("$port")
	done
	load $((n / 10)) "$inflight" "$work/access.bin" Access "${ports[@]}" >/dev/null # warm-up
	read -r a ao < <(load "$n" "$inflight" "$work/access.bin" Access "${ports[@]}")
	read -r p po < <(load "$puts" "$inflight" "$work/put.bin" Put "${ports[@]}")
	read -r s so < <(load_spread "$sputs" "${ports[@]}")
	stop_servers
	key="$label $count"
	[ "${res[$key access]:-0}" -ge "$a" ] || res[$key access]=$a
	[ "${res[$key put]:-0}" -ge "$p" ] || res[$key put]=$p
	[ "${res[$key spread]:-0}" -ge "$s" ] || res[$key spread]=$s
	ok[$key]="$((${ok[$key]:-0} + ao + po + so))"
	echo "  round $round: $label x$count: access $a req/s ($ao ok), put $p req/s ($po ok)," \
		"put spread $s req/s ($so ok)" >&2
}

echo "coffer serve on PostgreSQL vs SQLite: $loaders h2load processes, $inflight connections in total,"
echo "$n Access (latest of one secret), $puts Put (to one secret) and $sputs Put spread over $spread"
echo "secrets ($spread connections, one per secret) per run; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg);"
echo "rows alternate between the stores, best of $rounds rounds (the machine is shared and noisy)"
pgurl=$("$pgctl" newdb "$work/pg.state" bench)
for round in $(seq "$rounds"); do
	measure sqlite "$work/sqlite" 1
	measure postgres "$pgurl" 1
	measure sqlite "$work/sqlite" 2
	measure postgres "$pgurl" 2
done
printf '%-10s %7s %14s %14s %16s %12s\n' store servers "access req/s" "put req/s" \
	"put/$spread req/s" "answers ok"
for key in "sqlite 1" "sqlite 2" "postgres 1" "postgres 2"; do
	printf '%-10s %7s %14s %14s %16s %12s\n' ${key} "${res[$key access]}" "${res[$key put]}" \
		"${res[$key spread]}" "${ok[$key]}/$(((n + puts + sputs / spread * spread) * rounds))"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
echo "postgres/sqlite, one server: access $(ratio "${res[postgres 1 access]}" "${res[sqlite 1 access]}")x," \
	"put $(ratio "${res[postgres 1 put]}" "${res[sqlite 1 put]}")x"
echo "two servers/one server on postgres: access $(ratio "${res[postgres 2 access]}" "${res[postgres 1 access]}")x," \
	"put to one hot secret $(ratio "${res[postgres 2 put]}" "${res[postgres 1 put]}")x," \
	"put spread over $spread secrets $(ratio "${res[postgres 2 spread]}" "${res[postgres 1 spread]}")x"
echo "two servers/one server on sqlite: put to one hot secret $(ratio "${res[sqlite 2 put]}" "${res[sqlite 1 put]}")x," \
	"put spread over $spread secrets $(ratio "${res[sqlite 2 spread]}" "${res[sqlite 1 spread]}")x"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
