#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan+UBSan, coverage everywhere) and fuzz each for a
# bounded time, starting from (and adding to) its saved corpus.
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s; targets: grpc core client)
set -euo pipefail
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(grpc core client)
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
CC=clang CFLAGS="-fsanitize=fuzzer-no-link" cmake -S "$root" -B "$build" -DCOFFER_FUZZ=ON \
	-DCOFFER_SANITIZE=ON -DCOFFER_WITH_POSTGRES=OFF >/dev/null
for t in "${targets[@]}"; do
	cmake --build "$build" -j"$(nproc)" --target "fuzz_$t" >/dev/null
	mkdir -p "$build/corpus-$t"
	rc=0
	"$build/fuzz/fuzz_$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$build/crash-$t-" "$build/corpus-$t" "$root/fuzz/corpus/$t" \
		>"$build/fuzz-$t.log" 2>&1 || rc=$?
	grep -E '^(stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' "$build/fuzz-$t.log" || true
	if [ "$rc" -ne 0 ]; then
		echo "fuzz: fuzz_$t failed (exit $rc); log $build/fuzz-$t.log, input $build/crash-$t-*"
		exit 1
	fi
	echo "fuzz: fuzz_$t ran ${secs}s with no crash; new inputs in $build/corpus-$t"
done
