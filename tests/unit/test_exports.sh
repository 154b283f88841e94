#!/usr/bin/env bash
# A shared library (libcoffer.so, libcoffer_client.so) exports exactly the functions its header
# (coffer.h, coffer_client.h) declares: nothing internal leaks out as
# API, and nothing declared is missing.
set -u
so=${1:?usage: test_exports.sh LIBRARY.so HEADER.h}
hdr=${2:?}
declared=$(grep -A1 '^COFFER_API' "$hdr" | tr '\n' ' ' | grep -o 'coffer_[a-z_]*(' | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort -u)
if [ "$declared" = "$exported" ]; then
	echo "exports match the header: $(echo "$exported" | wc -l) functions"
	echo "1 passed, 0 failed"
else
	diff <(echo "$declared") <(echo "$exported")
	echo "0 passed, 1 failed"
	exit 1
fi
