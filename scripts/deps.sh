#!/usr/bin/env bash
# Install the Debian packages coffer needs to build, test and benchmark, if any is missing.
# Sourced or run by scripts/run-server and scripts/test; safe to run again (does nothing).
set -euo pipefail
PKGS=(
	build-essential cmake pkg-config clang clang-format libclang-rt-dev
	libsodium-dev libsqlite3-dev sqlite3 libpq-dev
	libnghttp2-dev libevent-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev
	libcmocka-dev libjansson-dev python3 scdoc libsystemd-dev
	postgresql nghttp2-client redis-server redis-tools
)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
	echo "coffer: installing missing packages: ${missing[*]}" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
