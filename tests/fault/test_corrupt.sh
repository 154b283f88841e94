#!/usr/bin/env bash
# Corrupt files: each case gives a clear error with its exact message and exit code (5: key or
# integrity failure), or the right value; never a crash, never a wrong value.
# Usage: test_corrupt.sh path/to/coffer
COFFER=$1
. "$(dirname "$0")/../cli/lib.sh"
command -v sqlite3 >/dev/null || { echo "needs sqlite3"; exit 77; }

base="$WORK/base"
COFFER_STORE=$base "$COFFER" put a v1 >/dev/null 2>&1
COFFER_STORE=$base "$COFFER" put b v2 >/dev/null 2>&1
COFFER_STORE=$base "$COFFER" put a v3 >/dev/null 2>&1
fresh() { rm -rf "$WORK/s"; cp -r "$base" "$WORK/s"; export COFFER_STORE="$WORK/s"; }

# expect_out_or_err NAME VALUE: exit 0 with exactly VALUE, or exit 5 with a malformed-database
# message; anything else (a crash is exit >= 128, a wrong value) fails.
malformed='^coffer: error: sqlite: [a-z ]+: (database disk image is malformed|file is not a database)$'
access_ok_or_corrupt() {
	local name=$1 want=$2 desc=$3
	"$COFFER" access "$name" >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	if [ $rc -eq 0 ] && [ "$(cat "$WORK/out")" = "$want" ]; then pass "$desc: right value"
	elif [ $rc -eq 5 ] && grep -qE "$malformed" "$WORK/err"; then pass "$desc: $(cat "$WORK/err")"
	else fail "$desc (exit $rc, out '$(head -c 40 "$WORK/out")', err '$(head -c 200 "$WORK/err")')"; fi
}

# 1. A page of coffer.db overwritten with garbage: every page in turn (page 1 is the file header).
pages=$(sqlite3 "$base/coffer.db" "PRAGMA page_count")
psize=$(sqlite3 "$base/coffer.db" "PRAGMA page_size")
for pg in $(seq 1 "$pages"); do
	fresh
	head -c "$psize" /dev/urandom | dd of="$COFFER_STORE/coffer.db" bs="$psize" seek=$((pg - 1)) \
		count=1 conv=notrunc 2>/dev/null
	access_ok_or_corrupt a v3 "page $pg of $pages garbled, access a"
	access_ok_or_corrupt b v2 "page $pg of $pages garbled, access b"
done
# The exact message for the header page and for the keyring's page (page 3 in this layout).
fresh
head -c "$psize" /dev/urandom | dd of="$COFFER_STORE/coffer.db" bs="$psize" seek=0 count=1 conv=notrunc 2>/dev/null
expect_rc 5 "database header garbled: exit 5" "$COFFER" access a
expect_eq "coffer: error: sqlite: configure: file is not a database" "$(cat "$WORK/err")" "database header garbled: message" 

# 2. A truncated WAL: commits cut off at the end are gone (as after a crash before them), the
# rest reads back; never an error, never a value not put. A reader holds the database open so
# that the WAL outlives the writer.
fresh
mkfifo "$WORK/hold"
sqlite3 "$COFFER_STORE/coffer.db" <"$WORK/hold" >"$WORK/held" 2>&1 &
holder=$!
exec 3>"$WORK/hold"
echo "BEGIN; SELECT 'held' FROM secrets LIMIT 1;" >&3
for _ in $(seq 1 200); do grep -q held "$WORK/held" && break; sleep 0.05; done
grep -q held "$WORK/held" || fail "the reader holding the WAL did not start"
"$COFFER" put a v4 >/dev/null 2>&1 && "$COFFER" put a v5 >/dev/null 2>&1
mkdir "$WORK/t"
cp "$COFFER_STORE/coffer.db" "$COFFER_STORE/coffer.db-wal" "$COFFER_STORE/master.key" "$WORK/t/"
chmod 700 "$WORK/t"
exec 3>&-
wait $holder
walsize=$(stat -c %s "$WORK/t/coffer.db-wal")
truncate -s $((walsize - 1000)) "$WORK/t/coffer.db-wal"
COFFER_STORE="$WORK/t" "$COFFER" access a >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_eq "0 v4" "$rc $(cat "$WORK/out")" "WAL truncated inside the last commit: the commit before it is latest"
COFFER_STORE="$WORK/t" expect_rc 0 "WAL truncated: b still reads" "$COFFER" access b
truncate -s 17 "$WORK/t/coffer.db-wal"
COFFER_STORE="$WORK/t" "$COFFER" access a >"$WORK/out" 2>"$WORK/err"
rc=$?
case "$rc $(cat "$WORK/out")" in
"0 v1" | "0 v3" | "0 v4") pass "WAL truncated to a partial header: an acknowledged older value ($(cat "$WORK/out"))" ;;
*) fail "WAL truncated to a partial header (exit $rc, '$(cat "$WORK/out")', $(cat "$WORK/err"))" ;;
esac

# 3. Garbage in coffer.gen (a cache hint, rebuilt from the database): right values.
for n in 8 3 5000; do
	fresh
	head -c $n /dev/urandom >"$COFFER_STORE/coffer.gen"
	"$COFFER" access a >"$WORK/out" 2>"$WORK/err"
	expect_eq "0 v3" "$? $(cat "$WORK/out")" "coffer.gen holding $n random bytes: the right value"
	"$COFFER" put a v9 >/dev/null 2>&1
	expect_eq "v9" "$("$COFFER" access a 2>&1)" "coffer.gen holding $n random bytes: a put then reads back"
done

# 4. A keyring row removed.
fresh
sqlite3 "$COFFER_STORE/coffer.db" "DELETE FROM keyring WHERE id = (SELECT max(id) FROM keyring)"
expect_rc 5 "keyring row removed: exit 5" "$COFFER" access a
expect_eq "coffer: error: store has no data keys" "$(cat "$WORK/err")" "keyring row removed: message"
expect_rc 5 "keyring row removed: put refused, exit 5" "$COFFER" put a x

# 5. A key file of the wrong length (16 bytes, 40 bytes, not base64).
for k in AQIDBAUGBwgJCgsMDQ4PEA== AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKA== 'not a key'; do
	fresh
	printf '%s\n' "$k" >"$COFFER_STORE/master.key"
	expect_rc 5 "key file '$k': exit 5" "$COFFER" access a
	expect_eq "coffer: error: key file '$COFFER_STORE/master.key' does not hold a base64 256-bit key" \
		"$(cat "$WORK/err")" "key file '$k': message"
done
finish
