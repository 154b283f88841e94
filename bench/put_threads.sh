#!/usr/bin/env bash
# Where a Put at 50 in flight goes: bench/put_threads.sh BUILD_DIR [cpu|strace]
#   cpu (default): N (20000) puts of one secret at 50 in flight; each server thread's CPU time
#     (from /proc/PID/task/*/stat) and the average batch (coffer_put_batch_size);
#   strace: the server under `strace -f -T -e trace=fdatasync,fsync`: 1000 puts at 1 in flight,
#     10000 at 50; the number of syncs and their time.
set -euo pipefail
b=$1; mode=${2:-cpu}; mport=${MPORT:-19393}
w=$(mktemp -d /tmp/coffer-putthr.XXXXXX)
pid=; spid=
cleanup() { [ -n "$spid" ] && kill "$spid" 2>/dev/null; [ -n "$pid" ] && wait "$pid" 2>/dev/null; rm -rf "$w"; }
trap cleanup EXIT
coffer=$b/src/cli/coffer
env -u COFFER_MASTER_KEY -u COFFER_PASSPHRASE -u COFFER_KEY_FILE \
	"$coffer" --store "$w/store" put bench-key x >/dev/null 2>&1
echo "allow default put,access *" >"$w/policy"
value=bleak_dearest_hanged_reigns_0123
printf '\x00\x00\x00\x00\x2f\x0a\x0b\x0a\x09bench-put\x12\x20%s' "$value" >"$w/put.bin"
pre=()
[ "$mode" = strace ] && pre=(strace -f -T -e trace=fdatasync,fsync -o "$w/st.txt")
env -u COFFER_MASTER_KEY -u COFFER_PASSPHRASE -u COFFER_KEY_FILE "${pre[@]}" \
	"$coffer" --store "$w/store" serve --listen 127.0.0.1:0 --policy "$w/policy" --threads 1 \
	--metrics "127.0.0.1:$mport" >"$w/out" 2>"$w/log" &
pid=$!
for _ in $(seq 200); do grep -q "listening on" "$w/out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$w/out")
[ -n "$port" ] || { echo "coffer serve did not start" >&2; exit 1; }
if [ "$mode" = strace ]; then spid=$(pgrep -P "$pid" | head -1); else spid=$pid; fi
url=http://127.0.0.1:$port/nitric.proto.secrets.v1.SecretManager/Put
h2() { h2load -n "$1" -c "$2" -m 1 -d "$w/put.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$url"; }
h2 500 50 >/dev/null
snap() { for t in /proc/"$spid"/task/*; do echo "$(basename "$t") $(awk '{print $14 + $15}' "$t/stat")"; done; }
batches() { curl -s "http://127.0.0.1:$mport/metrics" | awk '/^coffer_put_batch_size_(sum|count)/ {printf "%s ", $2}'; }
syncs() { grep -o '<[0-9.]*>' | tr -d '<>' | sort -n | awk '{a[NR] = $1; s += $1} END {if (NR) printf "%d syncs, mean %.3f ms, median %.3f ms, p90 %.3f ms\n", NR, s / NR * 1000, a[int((NR + 1) / 2)] * 1000, a[int(NR * 0.9)] * 1000}'; }
echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$mode" = strace ]; then
	n0=$(wc -l <"$w/st.txt")
	echo "1 in flight: $(h2 1000 1 | grep -o 'finished in.*req/s')"
	n1=$(wc -l <"$w/st.txt")
	echo "50 in flight: $(h2 10000 50 | grep -o 'finished in.*req/s')"
	n2=$(wc -l <"$w/st.txt")
	echo "1 in flight:  $(sed -n "$((n0 + 1)),${n1}p" "$w/st.txt" | syncs)"
	echo "50 in flight: $(sed -n "$((n1 + 1)),${n2}p" "$w/st.txt" | syncs)"
else
	m0=$(batches); snap >"$w/c0"
	echo "50 in flight: $(h2 "${N:-20000}" 50 | grep -o 'finished in.*req/s')"
	snap >"$w/c1"; m1=$(batches)
	echo "batch sum/count before the run: $m0; after: $m1"
	echo "CPU per thread (tid: seconds; the committer, started first, has the lower tid than the worker):"
	paste "$w/c0" "$w/c1" | awk '{d = $4 - $2; if (d > 0) printf "  %s: %.2f s\n", $1, d / 100}'
fi
echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
