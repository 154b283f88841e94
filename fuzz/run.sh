#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan+UBSan, coverage everywhere) and fuzz each for a
# bounded time, starting from (and adding to) its saved corpus.
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s; targets: grpc core policy client health cli)
#   grpc    the gRPC request path (HTTP/2 framing, protobuf decoding, replies)
#   core    names, version ids, base64 keys, sealed records as read from a store
#   policy  the server's policy and token files
#   client  libcoffer_client's handling of what a server sends
#   health  the HealthCheckRequest decoder
#   cli     the CLI's argument parser (every command, option and help path)
# FUZZ_NIGHTLY=1: 1,800 s per target unless given, and the new inputs are merged (minimized) into
# fuzz/corpus/TARGET, so the saved corpus grows in the repository (commit it).
# FUZZ_MERGE=1: merge after a run of any length.
set -euo pipefail
nightly=${FUZZ_NIGHTLY:-0}
secs=${1:-$([ "$nightly" = 1 ] && echo 1800 || echo 60)}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(grpc core policy client health cli)
merge=${FUZZ_MERGE:-$nightly}
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
	if [ "$merge" = 1 ]; then
		mkdir -p "$root/fuzz/corpus/$t"
		before=$(ls "$root/fuzz/corpus/$t" | wc -l)
		"$build/fuzz/fuzz_$t" -merge=1 -max_len=65536 "$root/fuzz/corpus/$t" "$build/corpus-$t" \
			>>"$build/fuzz-$t.log" 2>&1
		echo "fuzz: fuzz/corpus/$t: $before -> $(ls "$root/fuzz/corpus/$t" | wc -l) inputs"
	fi
done
