#!/usr/bin/env bash
# Put at 1 and at 50 in flight, two (or more) builds alternately in one run, so the shared
# machine's load hits them alike: bench/put_compare.sh before=DIR after=DIR
# Each DIR is a built tree (Release). PASSES (2) passes over the builds, ROUNDS (3) per build.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 NAME=BUILD_DIR [NAME=BUILD_DIR ...]" >&2; exit 2; }
for p in $(seq "${PASSES:-2}"); do
	for nb in "$@"; do
		echo "== ${nb%%=*} (pass $p) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
		ONLY=put ROUNDS=${ROUNDS:-3} COFFER_BUILD=${nb#*=} "$top/bench/server_bench.sh" 2>&1 |
			grep -E 'round|did not start|error' || echo "(this build's run failed)"
	done
done
echo "end loadavg $(cat /proc/loadavg)"
