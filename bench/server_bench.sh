#!/usr/bin/env bash
# coffer serve vs redis, in one run, on loopback (issue 3, acceptance 5):
#   - Access of one secret with h2load (gRPC body prepared once) and GET of one key with
#     redis-benchmark against a redis-server started here, with the same requests in flight, at
#     32-byte and 4 KiB values; both throughputs, their ratio (target: coffer >= 1.2x redis with
#     p99 <= 1 ms, DESIGN.md) and both p50/p99 latencies;
#   - Put throughput with 1 and with 50 requests in flight (group commit should make the second
#     much higher);
#   - the server's RSS idle and under load;
#   - Access with the audit log on against off (issue 9: target >= 0.8x).
# Usage: bench/server_bench.sh [REQUESTS]   (env COFFER_BUILD: a built tree to use; INFLIGHT: 50;
#        ONLY=put: the Put figures alone, in ROUNDS (3) alternating rounds of 1 and 50 in flight;
#        ONLY=access: the Access comparison alone, in ROUNDS (3) rounds, each: redis GET, coffer
#          serve with 1 worker thread and with the default (one per core), at 32 B and 4 KiB;
#          with BASE_BUILD (another built tree, e.g. main's) its server too, in alternation with
#          this one, for before/after ratios from the same run;
#        AUDIT_REQUESTS: 20000 per audit round; AUDIT_ONLY=1: only the audit comparison;
#        TMPDIR: where the store goes, e.g. /dev/shm to take the fsync cost out)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-200000}
inflight=${INFLIGHT:-50}
puts1=${PUTS1:-2000}
puts50=${PUTS50:-20000}

need=()
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

build=${COFFER_BUILD:-$top/build-bench}
if [ -z "${COFFER_BUILD:-}" ]; then
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" -j"$(nproc)" --target coffer_cli >/dev/null
fi
coffer=$build/src/cli/coffer

work=$(mktemp -d "${TMPDIR:-/tmp}/coffer-bench.XXXXXX") # TMPDIR=/dev/shm: no fsync cost
srv_pid=
redis_pid=
cleanup() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# One secret of 32 bytes, stored before the server starts.
value=bleak_dearest_hanged_reigns_0123
env -u COFFER_MASTER_KEY -u COFFER_PASSPHRASE -u COFFER_KEY_FILE \
	"$coffer" --store "$work/store" put bench-key "$value" >/dev/null 2>&1
# And one of 4 KiB (the Access comparison runs at both sizes).
value4k=$(head -c 3072 /dev/urandom | base64 -w0 | head -c 4096)
env -u COFFER_MASTER_KEY -u COFFER_PASSPHRASE -u COFFER_KEY_FILE \
	"$coffer" --store "$work/store" put bench-4k "$value4k" >/dev/null 2>&1
echo "allow default put,access *" >"$work/policy"

# gRPC bodies, prepared once: 5-byte prefix + protobuf.
# SecretAccessRequest{secret_version{secret{name:"bench-key"}, version:"latest"}}
printf '\x00\x00\x00\x00\x17\x0a\x15\x0a\x0b\x0a\x09bench-key\x12\x06latest' >"$work/access.bin"
printf '\x00\x00\x00\x00\x16\x0a\x14\x0a\x0a\x0a\x08bench-4k\x12\x06latest' >"$work/access4k.bin"
# SecretPutRequest{secret{name:"bench-put"}, value: 32 bytes}
printf '\x00\x00\x00\x00\x2f\x0a\x0b\x0a\x09bench-put\x12\x20%s' "$value" >"$work/put.bin"

hdrs=(-H 'content-type: application/grpc' -H 'te: trailers')

# Start coffer serve with $1 worker threads; sets srv_pid and base.
start_server() {
	env -u COFFER_MASTER_KEY -u COFFER_PASSPHRASE -u COFFER_KEY_FILE \
		"$coffer" --store "$work/store" serve --listen 127.0.0.1:0 --policy "$work/policy" \
		--threads "$1" ${2:+$2} >"$work/serve.out" 2>"$work/serve.log" &
	srv_pid=$!
	for _ in $(seq 300); do # up to 30 s: a loaded machine starts it slowly
		grep -q '^coffer: store' "$work/serve.out" 2>/dev/null && break
		sleep 0.1
	done
	local port
	port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$work/serve.out")
	[ -n "$port" ] || { echo "coffer serve did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
	base=http://127.0.0.1:$port/nitric.proto.secrets.v1.SecretManager
	# Sanity: the prepared Access really succeeds (grpc-status 0).
	local check
	check=$(nghttp -v "${hdrs[@]}" -d "$work/access.bin" "$base/Access" 2>&1 | tr -d '\0' || true)
	grep -q 'grpc-status: 0' <<<"$check" || { echo "Access sanity check failed:" >&2; echo "$check" >&2; exit 1; }
}
stop_server() {
	kill "$srv_pid" && wait "$srv_pid" || true
	srv_pid=
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$srv_pid/status"; }
h2() { # h2load over h2c, one stream per connection: $1 requests, $2 connections, $3 body, $4 path
	h2load -n "$1" -c "$2" -m 1 "${hdrs[@]}" -d "$3" --log-file="$work/h2.log" "$base/$4" 2>&1
}
rps_of() { sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p'; }
pct() { # percentile $1 of the per-request durations (microseconds, column 3) in the h2load log
	cut -f3 "$work/h2.log" | sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100); if (i<1) i=1; print a[i]}'
}
best() { awk -v a="$1" -v b="$2" 'BEGIN {print (a > b) ? a : b}'; }

if [ "${AUDIT_ONLY:-0}" != 1 ] && [ "${ONLY:-}" != put ]; then # redis only for the comparison
	redis_port=$((20000 + RANDOM % 20000))
	redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
	redis_pid=$!
	for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
	redis-cli -p "$redis_port" set bench-key "$value" >/dev/null
	redis-cli -p "$redis_port" set bench-4k "$value4k" >/dev/null
fi
# redis_get REQUESTS [KEY]: "rps p50_us p99_us" (redis-benchmark's CSV gives milliseconds)
redis_get() {
	redis-benchmark -p "$redis_port" -c "$inflight" -n "$1" --csv GET "${2:-bench-key}" | tail -n 1 |
		tr -d '"' | awk -F, '{printf "%s %d %d\n", $2, $5 * 1000, $7 * 1000}'
}

# Put alone: 1 and INFLIGHT in flight alternately, ROUNDS times, each pair's ratio printed.
if [ "${ONLY:-}" = put ]; then
	start_server "${SERVER_THREADS:-1}"
	h2 200 "$inflight" "$work/put.bin" Put >/dev/null # warm-up
	for round in $(seq "${ROUNDS:-3}"); do
		p1=$(h2 "$puts1" 1 "$work/put.bin" Put | rps_of)
		p50=$(h2 "$puts50" "$inflight" "$work/put.bin" Put | rps_of)
		echo "round $round: coffer serve Put, 1 in flight: $p1 req/s; $inflight in flight: $p50 req/s ($(awk -v a="$p50" -v b="$p1" 'BEGIN {printf "%.1f", a / b}')x)"
	done
	exit 0
fi

# Access alone: per round and value size, redis and each server configuration one after the other
# (see Usage). Each line: req/s, p50/p99 in microseconds, the ratio to that round's redis, and the
# server's CPU time (user + system, all its threads, /proc/PID/stat) per request: what other load
# on the machine moves least.
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_us() { # $1 $2: ticks before and after, $3 requests
	awk -v a="$1" -v b="$2" -v n="$3" -v t="$ticks" 'BEGIN {printf "%.1f", (b - a) * 1e6 / t / n}'
}
# The load generator's own CPU time per request (h2load's, redis-benchmark's): on 2 cores it bounds
# what either server can be measured at. Runs "$@" in a subshell whose children's times it reads;
# prints the command's output, then "client-cpu-us-total US".
with_cpu() {
	(
		"$@"
		times >"$work/times" # not in a pipeline: a forked builtin would see no children
		tail -n 1 "$work/times" | awk '{
			t = 0
			for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
			printf "client-cpu-us-total %.0f\n", t * 1e6 }'
	)
}
client_us() { # $1: with_cpu's output, $2: requests
	sed -n 's/^client-cpu-us-total //p' <<<"$1" | awk -v n="$2" '{printf "%.1f", $1 / n}'
}
if [ "${ONLY:-}" = access ]; then
	builds=("$coffer")
	names=(this)
	if [ -n "${BASE_BUILD:-}" ]; then
		builds+=("$BASE_BUILD/src/cli/coffer")
		names+=(base)
	fi
	for round in $(seq "${ROUNDS:-3}"); do
		echo "round $round (load average $(cut -d' ' -f1-3 /proc/loadavg)):"
		for size in 32 4096; do
			body=$work/access.bin key=bench-key
			[ "$size" = 4096 ] && body=$work/access4k.bin key=bench-4k
			c0=$(cpu_ticks "$redis_pid")
			out=$(with_cpu redis_get "$n" "$key")
			read -r rr rp50 rp99 <<<"$(head -n 1 <<<"$out")"
			echo "  $size B: redis GET: $rr req/s, p50 $rp50 us, p99 $rp99 us, CPU $(cpu_us "$c0" "$(cpu_ticks "$redis_pid")" "$n") us/request (redis-benchmark: $(client_us "$out" "$n"))"
			for t in 1 "$(nproc)"; do
				for i in "${!builds[@]}"; do
					coffer=${builds[$i]}
					start_server "$t"
					h2 $((n / 10)) "$inflight" "$body" Access >/dev/null # warm-up
					c0=$(cpu_ticks "$srv_pid")
					out=$(with_cpu h2 "$n" "$inflight" "$body" Access)
					r=$(rps_of <<<"$out")
					cpu=$(cpu_us "$c0" "$(cpu_ticks "$srv_pid")" "$n")
					echo "  $size B: coffer ($(printf '%-4s' "${names[$i]}"), $t worker thread$([ "$t" = 1 ] || echo s)): $r req/s, p50 $(pct 50) us, p99 $(pct 99) us, $(awk -v a="$r" -v b="$rr" 'BEGIN {printf "%.2f", a / b}')x redis, CPU $cpu us/request (h2load: $(client_us "$out" "$n"))"
					stop_server
				done
			done
		done
	done
	exit 0
fi

# redis-server serves from one thread, and the load generator needs the machine's other core:
# the comparison runs coffer serve with one worker thread too (SERVER_THREADS to change it).
threads=${SERVER_THREADS:-1}
# Access with the audit log on (--audit: every request recorded before its answer) against the
# same load with it off, on the same thread count (issue 9, acceptance 5). The entries are
# group-committed (src/server/auditq.c): each durable write carries every request that arrived
# while the one before it was written. Two alternating rounds, best of each (the machine is
# shared and noisy).
# Also the server's CPU time per request (user + system, all its threads; the least of the
# rounds): the rate on a busy machine follows the load, this much less so.
audit_compare() {
	audit_n=${AUDIT_REQUESTS:-20000}
	audit_off=0 audit_on=0 audit_os=0 cpu_off=1e9 cpu_on=1e9
	for round in 1 2; do
		for mode in off on os; do
			local flag="" t0 r t1 us
			[ "$mode" = on ] && flag=--audit
			[ "$mode" = os ] && flag="--audit --audit-sync os"
			start_server "$threads" "$flag"
			t0=$(cpu_ticks "$srv_pid")
			r=$(h2 "$audit_n" "$inflight" "$work/access.bin" Access | rps_of)
			t1=$(cpu_ticks "$srv_pid")
			us=$(cpu_us "$t0" "$t1" "$audit_n")
			if [ "$mode" = os ]; then
				audit_os=$(best "$r" "$audit_os")
			elif [ "$mode" = on ]; then
				audit_on=$(best "$r" "$audit_on")
				cpu_on=$(awk -v a="$us" -v b="$cpu_on" 'BEGIN {print (a < b) ? a : b}')
			else
				audit_off=$(best "$r" "$audit_off")
				cpu_off=$(awk -v a="$us" -v b="$cpu_off" 'BEGIN {print (a < b) ? a : b}')
			fi
			stop_server
		done
	done
	audit_ratio=$(awk -v a="$audit_on" -v b="$audit_off" 'BEGIN {printf "%.2f", a / b}')
	audit_met=$(awk -v r="$audit_ratio" 'BEGIN {print (r >= 0.8) ? "met" : "NOT met"}')
	cpu_ratio=$(awk -v a="$cpu_on" -v b="$cpu_off" 'BEGIN {printf "%.2f", b / a}')
	audit_os_ratio=$(awk -v a="$audit_os" -v b="$audit_off" 'BEGIN {printf "%.2f", a / b}')
	audit_os_met=$(awk -v r="$audit_os_ratio" 'BEGIN {print (r >= 0.8) ? "met" : "NOT met"}')
}
if [ "${AUDIT_ONLY:-0}" = 1 ]; then # only the audit comparison
	audit_compare
	echo "coffer serve Access with --audit: $audit_on req/s, without: $audit_off req/s ($audit_n requests): ${audit_ratio}x (target >= 0.8x: $audit_met)"
	echo "  server CPU per Access: with --audit $cpu_on us, without $cpu_off us (without/with: ${cpu_ratio}x)"
	echo "  with --audit --audit-sync os (entries written, not synced, before the answer): $audit_os req/s: ${audit_os_ratio}x (target >= 0.8x: $audit_os_met)"
	exit 0
fi
start_server "$threads"
rss_idle=$(rss)
h2 $((n / 10)) "$inflight" "$work/access.bin" Access >/dev/null # warm-up
redis_get $((n / 10)) >/dev/null
# Per value size, two alternating rounds, best of each: the machine is shared and noisy. The
# latency distribution is h2load's per-request log (coffer) and redis-benchmark's (redis).
declare -A C_RPS C_P50 C_P99 C_OK R_RPS R_P50 R_P99
for size in 32 4096; do
	body=$work/access.bin key=bench-key
	[ "$size" = 4096 ] && body=$work/access4k.bin key=bench-4k
	C_RPS[$size]=0 R_RPS[$size]=0
	for round in 1 2; do
		out=$(h2 "$n" "$inflight" "$body" Access)
		r=$(rps_of <<<"$out")
		if [ "$(best "$r" "${C_RPS[$size]}")" = "$r" ]; then
			C_RPS[$size]=$r
			C_OK[$size]=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
			C_P50[$size]=$(pct 50)
			C_P99[$size]=$(pct 99)
		fi
		read -r rr rp50 rp99 <<<"$(redis_get "$n" "$key")"
		if [ "$(best "$rr" "${R_RPS[$size]}")" = "$rr" ]; then
			R_RPS[$size]=$rr R_P50[$size]=$rp50 R_P99[$size]=$rp99
		fi
	done
done
coffer_rps=${C_RPS[32]} redis_rps=${R_RPS[32]}
rss_load=$(rss)
# Soak: more rounds of the same load; the RSS after each should stay flat.
soak=
for round in 1 2 3; do
	h2 "$n" "$inflight" "$work/access.bin" Access >/dev/null
	soak="$soak $(rss)"
done
put1=$(h2 "$puts1" 1 "$work/put.bin" Put | rps_of)
put50=$(h2 "$puts50" "$inflight" "$work/put.bin" Put | rps_of)
rss_after=$(rss)
stop_server

# The same Access load on the default configuration (one worker thread per core).
start_server "$(nproc)"
coffer_default=$(h2 "$n" "$inflight" "$work/access.bin" Access | rps_of)
stop_server

audit_compare

gain=$(awk -v a="$put50" -v b="$put1" 'BEGIN {printf "%.1f", a / b}')
for size in 32 4096; do
	ratio=$(awk -v a="${C_RPS[$size]}" -v b="${R_RPS[$size]}" 'BEGIN {printf "%.2f", a / b}')
	met=$(awk -v r="$ratio" -v p="${C_P99[$size]}" 'BEGIN {print (r >= 1.2 && p <= 1000) ? "met" : "NOT met"}')
	echo "Access of a $size-byte value, $inflight connections x 1 in flight, $n requests:"
	echo "  coffer serve (h2load, $threads worker thread): ${C_RPS[$size]} req/s (${C_OK[$size]} 2xx), p50 ${C_P50[$size]} us, p99 ${C_P99[$size]} us"
	echo "  redis GET (redis-benchmark): ${R_RPS[$size]} req/s, p50 ${R_P50[$size]} us, p99 ${R_P99[$size]} us"
	echo "  ratio coffer/redis: ${ratio}x (target >= 1.2x with p99 <= 1 ms: $met)"
done
echo "coffer serve Access with the default $(nproc) worker threads (sharing the cores with h2load): $coffer_default req/s"
echo "coffer serve Put, 1 in flight: $put1 req/s; $inflight in flight: $put50 req/s (${gain}x, group commit)"
echo "coffer serve RSS: idle ${rss_idle} KiB, after Access load ${rss_load} KiB, after 3 more rounds (soak):${soak} KiB, after Put load ${rss_after} KiB"
echo "coffer serve Access with --audit: $audit_on req/s, without: $audit_off req/s ($audit_n requests): ${audit_ratio}x (target >= 0.8x: $audit_met)"
echo "  server CPU per Access: with --audit $cpu_on us, without $cpu_off us (without/with: ${cpu_ratio}x)"
echo "  with --audit --audit-sync os (entries written, not synced, before the answer): $audit_os req/s: ${audit_os_ratio}x (target >= 0.8x: $audit_os_met)"
