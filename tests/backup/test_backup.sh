#!/usr/bin/env bash
# coffer backup / restore-backup (docs/operations.md, "Back up and restore"):
# - a backup taken while another process puts restores to a store holding every put that was
#   acknowledged before the backup started, exactly (value and version id);
# - the restored store opens with the original master key, and only with it;
# - the file is 0600, no FILE.tmp is left, no plaintext value is in it;
# - a damaged backup (one flipped byte, a truncated copy, not a backup) is refused with a clear
#   error and nothing is created; restoring onto a store that holds data is refused (exit from
#   the table) and the store is left as it was.
COFFER=${1:?usage: test_backup.sh path/to/coffer}
. "$(dirname "$0")/../cli/lib.sh"
C() { "$COFFER" "$@"; }
S1="$WORK/s1"
export COFFER_STORE="$S1"

C put seed "seed-value-0" >/dev/null 2>&1 || fail "first put"

# --- a writer in another process: each put logged only once acknowledged -------------------
writer() {
	local i=0 v out
	while [ ! -e "$WORK/stop" ]; do
		v="canary-$i-$RANDOM$RANDOM"
		if out=$(C put "w$((i % 7))" "$v" 2>/dev/null); then
			printf '%s %s %s\n' "w$((i % 7))" "$out" "$v" >>"$WORK/acked"
		fi
		i=$((i + 1))
	done
}
: >"$WORK/acked"
writer &
wpid=$!
# Until the writer has had WANT puts acknowledged (a count, not a time: never a timing result).
WANT=${COFFER_SOAK:+500}
WANT=${WANT:-20}
while [ "$(wc -l <"$WORK/acked")" -lt "$WANT" ] && kill -0 "$wpid" 2>/dev/null; do sleep 0.1; done
# Everything acknowledged up to here must be in the backup; the writer goes on during it.
cp "$WORK/acked" "$WORK/before"
expect_rc 0 "backup while another process puts" C backup "$WORK/b.cbk"
sleep 1
touch "$WORK/stop"
wait "$wpid"
n_before=$(wc -l <"$WORK/before")
n_all=$(wc -l <"$WORK/acked")
[ "$n_before" -ge "$WANT" ] && pass "$n_before puts acknowledged before the backup, $n_all in all" ||
	fail "too few puts before the backup ($n_before)"

mode=$(stat -c %a "$WORK/b.cbk")
expect_eq 600 "$mode" "the backup file is 0600"
[ ! -e "$WORK/b.cbk.tmp" ] && [ ! -e "$WORK/b.cbk.img.tmp" ] && pass "no temporary file left" ||
	fail "temporary files left: $(ls "$WORK")"
head -c 8 "$WORK/b.cbk" | grep -q COFFERBK && pass "the file starts with its magic" || fail "no magic"
leaked=0
while read -r _ _ v; do
	grep -qaF "$v" "$WORK/b.cbk" && leaked=$((leaked + 1))
done <"$WORK/acked"
grep -qaF "seed-value-0" "$WORK/b.cbk" && leaked=$((leaked + 1))
expect_eq 0 "$leaked" "no plaintext value in the backup file"

# --- restore, then every acknowledged put reads back exactly --------------------------------
S2="$WORK/s2"
expect_rc 0 "restore-backup into a new folder" C restore-backup "$WORK/b.cbk" --store "$S2"
expect_rc 5 "the restored store does not open without the key" C --store "$S2" access seed
cp "$S1/master.key" "$S2/master.key"
expect_rc 0 "the restored store opens with the original master key" C --store "$S2" access seed
expect_eq "seed-value-0" "$(cat "$WORK/out")" "the first value reads back"
bad=0
while read -r name ver v; do
	got=$(C --store "$S2" access "$name@$ver" 2>/dev/null) || { bad=$((bad + 1)); continue; }
	[ "$got" = "$v" ] || bad=$((bad + 1))
done <"$WORK/before"
expect_eq 0 "$bad" "all $n_before puts acknowledged before the backup read back exactly, by id"
# Nothing in the restored store that the source does not hold: each restored version is the
# source's own (same id, same value).
diff_versions=0
for name in seed w0 w1 w2 w3 w4 w5 w6; do
	C --store "$S2" --json versions "$name" >"$WORK/v2" 2>/dev/null || continue
	for v in $(python3 -c 'import json,sys; print(" ".join(str(x["version"]) for x in json.load(open(sys.argv[1]))))' "$WORK/v2"); do
		a=$(C --store "$S2" access "$name@$v" 2>/dev/null)
		b=$(C --store "$S1" access "$name@$v" 2>/dev/null)
		[ "$a" = "$b" ] || diff_versions=$((diff_versions + 1))
	done
done
expect_eq 0 "$diff_versions" "every restored version is the source's, same id and value"
expect_rc 0 "the restored store takes puts" C --store "$S2" put after-restore x

# --- refusals -------------------------------------------------------------------------------
before_sum=$(sha256sum "$S2/coffer.db" | cut -d' ' -f1)
expect_rc 4 "restore onto a store that holds data is refused" C restore-backup "$WORK/b.cbk" --store "$S2"
expect_err_has "is not empty" "it says the store is not empty"
expect_eq "$before_sum" "$(sha256sum "$S2/coffer.db" | cut -d' ' -f1)" "that store is left as it was"

cp "$WORK/b.cbk" "$WORK/flip.cbk"
size=$(stat -c %s "$WORK/flip.cbk")
off=$((size / 2))
byte=$(od -An -tu1 -j"$off" -N1 "$WORK/flip.cbk" | tr -d ' ')
printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$WORK/flip.cbk" bs=1 seek="$off" conv=notrunc 2>/dev/null
expect_rc 5 "a backup with one byte changed is refused" C restore-backup "$WORK/flip.cbk" --store "$WORK/s3"
expect_err_has "checksum does not match" "it says the checksum does not match"
[ ! -e "$WORK/s3/coffer.db" ] && pass "nothing was restored from it" || fail "a damaged backup was restored"
head -c $((size - 100)) "$WORK/b.cbk" >"$WORK/short.cbk"
expect_rc 5 "a truncated backup is refused" C restore-backup "$WORK/short.cbk" --store "$WORK/s4"
expect_err_has "truncated" "it says so"
echo "not a backup" >"$WORK/junk.cbk"
expect_rc 5 "a file that is not a backup is refused" C restore-backup "$WORK/junk.cbk" --store "$WORK/s5"
expect_err_has "not a coffer backup" "it says so"
expect_rc 3 "a missing backup file: not found" C restore-backup "$WORK/none.cbk" --store "$WORK/s6"
C --json restore-backup "$WORK/flip.cbk" --store "$WORK/s7" >"$WORK/out" 2>"$WORK/err"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["exit"]==5, e' "$WORK/err" &&
	pass "--json: the refusal is one JSON error with its exit code" || fail "--json refusal: $(cat "$WORK/err")"
# A second backup over an existing FILE replaces it atomically.
expect_rc 0 "a backup over an existing file" C backup "$WORK/b.cbk"
expect_rc 0 "which restores" C restore-backup "$WORK/b.cbk" --store "$WORK/s8"
finish
