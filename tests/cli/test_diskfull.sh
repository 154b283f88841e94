#!/usr/bin/env bash
# A full disk, on a small tmpfs of our own (needs root to mount; skipped, exit 77, otherwise):
# - coffer.gen missing on a full disk while a server holds the store open: `coffer access`
#   must not die of a signal (it died of SIGBUS: coffer.gen was a sparse mmap) and reads the
#   right value.
COFFER=${1:?usage: test_diskfull.sh path/to/coffer}
. "$(dirname "$0")/lib.sh"
C() { "$COFFER" "$@"; }
# Under AddressSanitizer a SIGBUS would be caught and turned into exit 1: let it kill, as it
# would in a release build, so the test sees the signal.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigbus=0"

FS="$WORK/fs"
mkdir -m 700 "$FS"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=4m,mode=0700 coffer-test "$FS" 2>/dev/null; then
	echo "# skipped: cannot mount a tmpfs (needs root)"
	exit 77
fi
HOLDER=
cleanup() {
	[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
	umount "$FS" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
export COFFER_STORE="$FS/store"

# fill: write zeros until the file system says it is full.
fill() { dd if=/dev/zero of="$FS/fill" bs=4k >/dev/null 2>&1; }
free_space() { rm -f "$FS/fill"; }

# Some values, and a server that keeps the store open (as a running `coffer serve` does, which
# keeps SQLite's shared memory alive while the disk fills).
: >"$WORK/acks"
for i in 1 2 3; do
	v="before-$i-$RANDOM"
	ver=$(C put s "$v" 2>/dev/null) && echo "$ver $v" >>"$WORK/acks"
done
expect_eq 3 "$(wc -l <"$WORK/acks")" "three values stored"
if C serve --help >/dev/null 2>&1; then
	"$COFFER" serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
	HOLDER=$!
	for _ in $(seq 1 300); do
		grep -q '^coffer: store ' "$WORK/serve.out" && break
		kill -0 "$HOLDER" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^coffer: store ' "$WORK/serve.out" && pass "a server holds the store open" ||
		fail "the server did not start: $(head -c 300 "$WORK/serve.err")"
fi

# --- coffer.gen missing on a full disk ------------------------------------------------------
fill
rm -f "$COFFER_STORE/coffer.gen"
C access s >"$WORK/out" 2>"$WORK/err"
rc=$?
[ "$rc" -lt 128 ] && pass "access with coffer.gen missing on a full disk does not die of a signal" ||
	fail "access died of signal $((rc - 128)): $(head -c 300 "$WORK/err")"
if [ -n "$HOLDER" ]; then
	expect_eq 0 "$rc" "access works (without the cache)"
	expect_eq "$(tail -1 "$WORK/acks" | cut -d' ' -f2)" "$(cat "$WORK/out")" "access reads the latest value"
fi
C access s@1 >"$WORK/out" 2>"$WORK/err"
rc=$?
[ "$rc" -lt 128 ] && pass "a second access does not die either" || fail "second access: signal $((rc - 128))"

# --- space freed: the cache file is made again, and puts publish into it -----------------------
free_space
ver=$(C put s after-free 2>"$WORK/err")
expect_eq 0 "$?" "after freeing space a put works"
expect_eq after-free "$(C access s)" "and is the latest"
expect_eq 8 "$(stat -c %s "$COFFER_STORE/coffer.gen")" "coffer.gen is back, 8 bytes"
finish
