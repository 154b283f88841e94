#!/usr/bin/env bash
# Every benchmark in one run, on a Release build. Figures are ratios against baselines measured
# in the same run (the machine is shared and noisy: absolute numbers drift).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
build="$top/build-bench"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "== embedded (libcoffer vs raw SQLite)"
"$build/bench/bench_embedded"
# Stores of 10 k and 100 k secrets (about a minute); 1 M too with COFFER_BENCH_LARGE=1.
echo "== scale$([ "${COFFER_BENCH_LARGE:-0}" = 1 ] && echo " (with 1 M secrets)")"
COFFER_BUILD="$build" "$top/bench/scale.sh"
for b in "$top"/bench/server_bench.sh "$top"/bench/pg_bench.sh; do
	if [ -x "$b" ]; then
		echo "== $(basename "$b" .sh)"
		COFFER_BUILD="$build" "$b"
	fi
done
