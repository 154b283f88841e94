#!/usr/bin/env bash
# coffer copy (docs/operations.md, "Move to PostgreSQL"): SQLite -> PostgreSQL -> SQLite round
# trip of every version (ids, states, times, values), label, description, tags, retention,
# declaration and audit entry; a kill -9 in the middle of a copy (at a known point, and at an
# arbitrary one by an outside kill -9), then a rerun that resumes and ends exact; a target that
# differs refused. 10,000 versions (COFFER_SOAK=1: 50,000).
# Usage: test_copy.sh path/to/coffer path/to/copy_tool   (COFFER_PG_STATE set by ctest)
COFFER=${1:?coffer}
TOOL=${2:?copy_tool}
. "$(dirname "$0")/../cli/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
: "${COFFER_PG_STATE:?run through ctest (needs the PostgreSQL fixture)}"
PG1=$("$here/../pg/pg_server.sh" newdb "$COFFER_PG_STATE" coffer_copy1)
PG2=$("$here/../pg/pg_server.sh" newdb "$COFFER_PG_STATE" coffer_copy2)
if [ -n "${COFFER_SOAK:-}" ]; then NS=250; NV=200; else NS=100; NV=100; fi
SRC="$WORK/src" KEYS="$WORK/keys"
mkdir -m 700 "$KEYS"
# PostgreSQL has no default key file: the copy's target key is given (--to-key-file creates it).
"$TOOL" fill "$SRC" "" "$NS" "$NV" || fail "fill"
"$TOOL" dump "$SRC" "" >"$WORK/d.src" || fail "dump the source"
nver=$(grep -c '^  v ' "$WORK/d.src")
expect_eq $((NS * NV)) "$nver" "the source holds $((NS * NV)) versions"
grep -q 'state=1' "$WORK/d.src" && grep -q 'state=2' "$WORK/d.src" && grep -q 'label stable=' "$WORK/d.src" &&
	grep -q 'tags=\[team=core' "$WORK/d.src" && grep -q '^decl ' "$WORK/d.src" && grep -q '^audit ' "$WORK/d.src" &&
	pass "with destroyed and disabled versions, labels, tags, declarations, audit entries" ||
	fail "the source lacks a kind of data"

# --- SQLite -> PostgreSQL (the CLI), interrupted at a known point, then resumed ---------------
"$TOOL" copy "$SRC" "" "$PG1" "$KEYS/pg1.key" $((NS / 3)) >/dev/null 2>&1
expect_eq 137 "$?" "a copy killed with SIGKILL after $((NS / 3)) secrets"
start=$(date +%s)
expect_rc 0 "coffer copy --to postgres:// resumes it" \
	"$COFFER" --store "$SRC" --json copy --to "$PG1" --to-key-file "$KEYS/pg1.key"
python3 - "$WORK/out" "$NS" <<'PY' && pass "it verified the $((NS / 3)) secrets already there and copied the rest" || fail "resume counts: $(cat "$WORK/out")"
import json, sys
j = json.load(open(sys.argv[1])); ns = int(sys.argv[2])
assert j["verified"] == ns // 3 and j["copied"] == ns - ns // 3, j
PY
echo "  (the resumed copy of $((NS * NV)) versions took $(($(date +%s) - start)) s)"
"$TOOL" dump "$PG1" "$KEYS/pg1.key" >"$WORK/d.pg1" || fail "dump the PostgreSQL copy"
# The target's audit log is the source's plus nothing: the dumps compare whole.
diff "$WORK/d.src" "$WORK/d.pg1" >"$WORK/diff1" && pass "PostgreSQL holds exactly the source (every version, state, value, label, metadata, declaration, audit entry)" ||
	fail "PostgreSQL differs: $(head -c 600 "$WORK/diff1")"
cmp -s "$SRC/master.key" "$KEYS/pg1.key" && fail "the target's key is the source's" || pass "the target has its own master key"

# --- the PostgreSQL backup recipe (docs/operations.md): pg_dump, pg_restore into a new database ---
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -x "$PGBIN/pg_dump" ]; then
	expect_rc 0 "pg_dump --format=custom of the PostgreSQL store" \
		"$PGBIN/pg_dump" --format=custom --file="$WORK/coffer.pgdump" "$PG1"
	expect_rc 0 "pg_restore into an empty database" \
		"$PGBIN/pg_restore" --no-owner --dbname="$PG2" "$WORK/coffer.pgdump"
	"$TOOL" dump "$PG2" "$KEYS/pg1.key" >"$WORK/d.pg2" || fail "dump the pg_restore'd store"
	diff "$WORK/d.src" "$WORK/d.pg2" >"$WORK/diff3" && pass "the restored database opens with the same key and holds exactly the same" ||
		fail "the pg_restore'd store differs: $(head -c 600 "$WORK/diff3")"
else
	echo "  (pg_dump not found: the PostgreSQL backup recipe is not checked here)"
fi

# --- PostgreSQL -> SQLite, killed from outside at an arbitrary moment, rerun ----------------
BACK="$WORK/back"
"$COFFER" --store "$PG1" --key-file "$KEYS/pg1.key" copy --to "$BACK" >"$WORK/bg.out" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
	grep -q "secrets (" "$WORK/bg.out" 2>/dev/null && break
	sleep 0.05
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
echo "  (killed after: $(tail -1 "$WORK/bg.out"))"
expect_rc 0 "after a kill -9, the same copy runs again to the end" \
	"$COFFER" --store "$PG1" --key-file "$KEYS/pg1.key" copy --to "$BACK"
"$TOOL" dump "$BACK" "" >"$WORK/d.back" || fail "dump the copy back"
diff "$WORK/d.src" "$WORK/d.back" >"$WORK/diff2" && pass "SQLite -> PostgreSQL -> SQLite round-trips exactly" ||
	fail "the round trip differs: $(head -c 600 "$WORK/diff2")"
expect_rc 0 "a third run verifies everything and writes nothing" \
	"$COFFER" --store "$PG1" --key-file "$KEYS/pg1.key" --json copy --to "$BACK"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["copied"]==0 and j["audit_entries"]==0, j' "$WORK/out" &&
	pass "(0 copied, all verified)" || fail "third run: $(cat "$WORK/out")"

# --- no plaintext value on disk in the target; a target that differs is refused ---------------
leak=0
for f in "$BACK"/coffer.db*; do grep -qa 'value-1-' "$f" && leak=1; done
expect_eq 0 "$leak" "no plaintext value in the target's files"
"$COFFER" --store "$BACK" put sec-0001 changed >/dev/null 2>&1
expect_rc 9 "a target whose secret differs from the source is refused (exit from the table)" \
	"$COFFER" --store "$SRC" copy --to "$BACK"
expect_err_has "differs from the source" "it says which secret differs"

# --- the same store: refused -----------------------------------------------------------------
expect_rc 2 "a copy onto itself is refused" "$COFFER" --store "$SRC" copy --to "$SRC"
finish
