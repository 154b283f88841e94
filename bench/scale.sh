#!/usr/bin/env bash
# Scale (issue 11, target 5): stores of 10 k and 100 k secrets (and 1 M with
# COFFER_BENCH_LARGE=1), 3 versions of 32 bytes each, on SQLite. For each size: the fill, the
# database's size, coffer_open in a new process, access(latest) and access(1) p50/p99 over random
# names, the put rate (durable one at a time, and 1000 per commit), one page of coffer_list_page
# (first, middle via its token, first of a prefix at the end of the names), and `coffer serve`
# on the store: its start, its RSS after start and after serving access(latest) of K = min(N/2,
# SCALE_SERVED) distinct secrets (one libcoffer_client connection), with those accesses'
# p50/p99. Beside the times, counts that do not drift with the load: per access and per page,
# the SQLite VM steps (they grow with the rows visited), the pages read into SQLite's cache and
# what was read from the disk itself. Every store is made first, then ROUNDS rounds measure the sizes in turn (the machine's
# load drifts over all of them alike) and each figure is the median of its rounds. Printed as a
# table with each row's growth per 10x more secrets (the larger store's figure over the
# smaller's, both from this run): an index keeps a lookup flat or logarithmic (near 1x); ~10x
# is linear.
# Usage: bench/scale.sh [N ...]   (default 10000 100000, plus 1000000 with COFFER_BENCH_LARGE=1;
#        each N a multiple of 100). Env: COFFER_BUILD (a built tree), SCALE_DIR (where the stores
#        go: a fresh folder in it, deleted at the end; default the build tree), ROUNDS (3),
#        SCALE_SERVED (50000), SCALE_ACCESSES, SCALE_PUTS, SCALE_BATCH_PUTS, SCALE_LIST_ROUNDS
#        (bench/bench_scale.c). Disk: about 800 bytes per secret (790 MiB at 1 M).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${COFFER_BUILD:-$top/build-bench}
if [ -z "${COFFER_BUILD:-}" ]; then
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" -j2 --target coffer_cli bench_scale >/dev/null
fi
bench=$build/bench/bench_scale
coffer=$build/src/cli/coffer
[ -x "$bench" ] && [ -x "$coffer" ] || { echo "scale: build $bench and $coffer first" >&2; exit 1; }

sizes=("$@")
if [ ${#sizes[@]} -eq 0 ]; then
	sizes=(10000 100000)
	[ "${COFFER_BENCH_LARGE:-0}" = 1 ] && sizes+=(1000000)
fi
for n in "${sizes[@]}"; do
	[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 200 ] && [ $((n % 100)) -eq 0 ] ||
		{ echo "scale: N must be a multiple of 100, at least 200 (got $n)" >&2; exit 2; }
done

mkdir -p "${SCALE_DIR:-$build}"
work=$(mktemp -d "${SCALE_DIR:-$build}/scale.XXXXXX")
chmod 700 "$work"
srv_pid=
cleanup() {
	if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null; fi
	rm -rf "$work"
}
trap cleanup EXIT
unset COFFER_MASTER_KEY COFFER_PASSPHRASE COFFER_KEY_FILE
echo "allow default put,access *" >"$work/policy"

declare -A R # R[key,n]: the figures of every round, space-separated
put() { R[$1,$2]="${R[$1,$2]:-}${R[$1,$2]:+ }$3"; }
median() { tr ' ' '\n' | sort -g | awk 'NF {a[++n]=$1} END {if (n) print a[int((n+1)/2)]}'; }
# collect N: the "key value" lines of a bench_scale run in $out (an assignment, out=$(...), so
# that a failed run stops the script)
collect() { while read -r k v; do put "$k" "$1" "$v"; done <<<"$out"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$srv_pid/status"; }

# Every store first; then ROUNDS rounds, each measuring every size in turn, so that the machine's
# load drifts over all sizes alike; each figure is the median of its rounds.
for n in "${sizes[@]}"; do
	store=$work/s$n
	echo "scale: $n secrets: filling $store" >&2
	out=$("$bench" fill "$store" "$n")
	collect "$n"
	put db_mib "$n" "$(du -k --apparent-size "$store"/coffer.db* | awk '{s += $1} END {printf "%.1f", s / 1024}')"
done
served=${SCALE_SERVED:-50000}
for round in $(seq "${ROUNDS:-3}"); do
	for n in "${sizes[@]}"; do
		store=$work/s$n
		echo "scale: round $round, $n secrets" >&2
		for _ in 1 2 3; do
			out=$("$bench" open "$store")
			collect "$n"
		done
		out=$("$bench" embedded "$store" "$n")
		collect "$n"

		t0=$(date +%s%N)
		"$coffer" --store "$store" serve --listen 127.0.0.1:0 --policy "$work/policy" --threads 1 \
			>"$work/serve.out" 2>"$work/serve.log" &
		srv_pid=$!
		for _ in $(seq 3000); do
			grep -q '^coffer: store' "$work/serve.out" 2>/dev/null && break
			sleep 0.01
		done
		t1=$(date +%s%N)
		port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$work/serve.out")
		[ -n "$port" ] || { echo "scale: coffer serve did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
		put serve_start_ms "$n" $(((t1 - t0) / 1000000))
		put rss_start_kib "$n" "$(rss)"
		k=$((n / 2 < served ? n / 2 : served))
		out=$("$bench" client "127.0.0.1:$port" "$n" "$k")
		collect "$n"
		put rss_served_kib "$n" "$(rss)"
		kill "$srv_pid" && wait "$srv_pid" || true
		srv_pid=
	done
done
for n in "${sizes[@]}"; do
	for key in "${!R[@]}"; do
		[ "${key#*,}" = "$n" ] && R[$key]=$(median <<<"${R[$key]}")
	done
done

# The table. kind: cost (bigger is worse), rate (smaller is worse), data (grows with N by design).
rows=(
	"fill|fill_s|s|data"
	"database (db + wal)|db_mib|MiB|data"
	"coffer_open, new process|open_ms|ms|cost"
	"coffer_open, pages read|open_pages|1|cost"
	"access(latest) p50|access_latest_p50_us|us|cost"
	"access(latest) p99|access_latest_p99_us|us|cost"
	"access(1) p50|access_v1_p50_us|us|cost"
	"access(1) p99|access_v1_p99_us|us|cost"
	"access(latest) SQLite VM steps|access_latest_steps|1|cost"
	"access(latest) pages read|access_latest_pages|1|cost"
	"access(latest) read from disk|access_latest_disk_kib|KiB|cost"
	"access(1) SQLite VM steps|access_v1_steps|1|cost"
	"access(1) pages read|access_v1_pages|1|cost"
	"access(1) read from disk|access_v1_disk_kib|KiB|cost"
	"durable put (1 at a time)|put_per_s|/s|rate"
	"put, 1000 per commit|put_batch_per_s|/s|rate"
	"list: first page of 100|list_first_us|us|cost"
	"list: middle page (token)|list_middle_us|us|cost"
	"list: 1st page, prefix at end|list_prefix_end_us|us|cost"
	"list: first page, VM steps|list_first_steps|1|cost"
	"list: middle page, VM steps|list_middle_steps|1|cost"
	"list: prefix at end, VM steps|list_prefix_end_steps|1|cost"
	"serve: start to listening|serve_start_ms|ms|cost"
	"serve: RSS after start|rss_start_kib|KiB|cost"
	"serve: RSS after K accesses|rss_served_kib|KiB|cost"
	"serve: access p50 (client)|served_access_p50_us|us|cost"
	"serve: access p99 (client)|served_access_p99_us|us|cost"
)
label() { awk -v n="$1" 'BEGIN {if (n >= 1000000) printf "%gM", n / 1e6; else if (n >= 1000) printf "%gk", n / 1e3; else print n}'; }
# growth A B KIND: the ratio for this step, and its reading (per 10x more secrets)
growth() {
	awk -v a="$1" -v b="$2" -v kind="$3" 'BEGIN {
		if (a <= 0 && b > 0) { print "from 0"; exit }
		if (a <= 0 || b <= 0) { print "-"; exit }
		r = (kind == "rate") ? a / b : b / a
		w = (r < 1.5) ? "flat" : (r < 3) ? "log?" : (r < 6) ? "SUPERLOG" : "LINEAR"
		if (kind == "data") w = (r >= 6) ? "linear (data)" : "sublinear"
		printf "%.2fx %s", r, w
	}'
}
la=$(cut -d' ' -f1-3 /proc/loadavg)
echo "Scale: N secrets x 3 versions of 32 bytes, SQLite, $(basename "$build") build; load average $la"
echo "(median of ${ROUNDS:-3} rounds, alternating sizes; growth: the larger store's cost over the smaller's,"
echo " per 10x more secrets, rates inverted; serve: K = min(N/2, $served) distinct secrets, one connection)"
printf '%-32s %-4s' "" ""
for n in "${sizes[@]}"; do printf ' %10s' "$(label "$n")"; done
printf '   growth\n'
for row in "${rows[@]}"; do
	IFS='|' read -r title key unit kind <<<"$row"
	printf '%-32s %-4s' "$title" "$unit"
	for n in "${sizes[@]}"; do printf ' %10s' "${R[$key,$n]:--}"; done
	prev=
	g=
	for n in "${sizes[@]}"; do
		if [ -n "$prev" ] && [ $((n / prev)) -eq 10 ] && [ $((n % prev)) -eq 0 ]; then
			g="$g${g:+, }$(label "$n")/$(label "$prev") $(growth "${R[$key,$prev]:-0}" "${R[$key,$n]:-0}" "$kind")"
		fi
		prev=$n
	done
	printf '   %s\n' "${g:--}"
done
