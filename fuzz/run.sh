#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan+UBSan) and fuzz each for a bounded time, starting
# from (and adding to) the saved corpus. Usage: fuzz/run.sh [SECONDS]   (default 60)
set -euo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
CC=clang cmake -S "$root" -B "$build" -DCOFFER_FUZZ=ON -DCOFFER_SANITIZE=ON -DCOFFER_WITH_POSTGRES=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_grpc >/dev/null
mkdir -p "$build/corpus-grpc"
"$build/fuzz/fuzz_grpc" -max_total_time="$secs" -max_len=65536 -timeout=10 \
  "$build/corpus-grpc" "$root/fuzz/corpus/grpc"
echo "fuzz: ran fuzz_grpc for ${secs}s; new inputs are in $build/corpus-grpc (copy the useful ones to fuzz/corpus/grpc)"
