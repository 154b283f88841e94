#!/usr/bin/env bash
# Every C source and header of coffer is formatted as .clang-format says (clang-format 14,
# Debian 12's; scripts/deps.sh installs it). Fix with: clang-format -i FILE...
set -euo pipefail
top=$1
command -v clang-format >/dev/null || { echo "clang-format not installed: skipped"; exit 77; }
cd "$top"
mapfile -t files < <(find src include tests bench fuzz -name '*.[ch]' ! -name '*.pb-c.*' | sort)
bad=()
for f in "${files[@]}"; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
echo "${#files[@]} files checked, ${#bad[@]} not formatted"
if [ ${#bad[@]} -gt 0 ]; then
	printf '  clang-format -i %s\n' "${bad[@]}"
	exit 1
fi
