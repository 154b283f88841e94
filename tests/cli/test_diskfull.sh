#!/usr/bin/env bash
# A full disk, on a small tmpfs of our own (needs root to mount; skipped, exit 77, otherwise):
# - coffer.gen missing on a full disk while a server holds the store open: `coffer access`
#   must not die of a signal (it died of SIGBUS: coffer.gen was a sparse mmap) and reads the
#   right value;
# - a put on a full disk fails with its own error: exit 7, "disk is full"; so does creating a
#   store or a key file there; nothing is lost;
# - once space is freed, puts work again and every earlier value is still readable.
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

# --- puts on a full disk ------------------------------------------------------------------
# Space may remain inside SQLite's files: put 64 KiB values until one fails (more than the whole
# file system could hold, so one must).
rc=0
for i in $(seq 1 80); do
	head -c 65536 /dev/urandom | base64 -w0 | head -c 65536 >"$WORK/big"
	ver=$(C put s --file "$WORK/big" 2>"$WORK/err")
	rc=$?
	[ "$rc" -ne 0 ] && break
	echo "$ver $(cat "$WORK/big")" >>"$WORK/acks"
done
expect_eq 7 "$rc" "a put on a full disk exits 7"
expect_err_has "disk is full" "and says the disk is full"
grep -q -i "storage error" "$WORK/err" && fail "the message is not the generic storage error" ||
	pass "the message is not the generic storage error"
expect_rc 7 "a second put fails the same way" C put s small
expect_err_has "disk is full" "and says so again"

# Creating on a full disk: a new store there, or a key file there for a store elsewhere.
expect_rc 7 "init of a new store on the full disk exits 7" C --store "$FS/new" init
expect_err_has "disk is full" "init says the disk is full"
expect_rc 7 "a key file on the full disk exits 7" C --store "$WORK/elsewhere" --key-file "$FS/k.key" init
expect_err_has "full" "the key file error says the disk is full"
[ -e "$FS/k.key" ] && fail "a partial key file was left" || pass "no partial key file left"
ls "$FS" | grep -q 'k.key.tmp' && fail "a temporary key file was left" || pass "no temporary key file left"

# With no process holding the store, SQLite must make its shared-memory file to read: on the
# full disk that may fail, and then it is the same clear error, never a crash.
if [ -n "$HOLDER" ]; then
	kill "$HOLDER" && wait "$HOLDER" 2>/dev/null
	HOLDER=
fi
C access s >"$WORK/out" 2>"$WORK/err"
rc=$?
if [ "$rc" -eq 0 ]; then
	pass "access with no other process on the full disk works"
else
	expect_eq 7 "$rc" "access with no other process on the full disk: exit 7 if it fails"
	expect_err_has "disk is full" "and says the disk is full"
fi

# --- space freed: everything works again, nothing was lost -----------------------------------
free_space
ver=$(C put s after-free 2>"$WORK/err")
expect_eq 0 "$?" "after freeing space a put works"
[ -n "$ver" ] && echo "$ver after-free" >>"$WORK/acks"
expect_eq after-free "$(C access s)" "and is the latest"
expect_eq 8 "$(stat -c %s "$COFFER_STORE/coffer.gen")" "coffer.gen is back, 8 bytes"
bad=0
while read -r ver val; do
	[ "$(C access "s@$ver")" = "$val" ] || { bad=$((bad + 1)); echo "# lost: s@$ver"; }
done <"$WORK/acks"
expect_eq 0 "$bad" "every acknowledged value is still readable ($(wc -l <"$WORK/acks") of them)"
expect_rc 0 "the key-file store can be finished now" C --store "$WORK/elsewhere" --key-file "$FS/k.key" init
expect_rc 0 "a new store on that disk can be made now" C --store "$FS/new" init
expect_eq ok "$(sqlite3 "$COFFER_STORE/coffer.db" 'PRAGMA integrity_check')" "PRAGMA integrity_check is ok"
finish
