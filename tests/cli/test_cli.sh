#!/usr/bin/env bash
# The seed's workflow through the CLI, bad input with clear errors and exit codes, and proof
# that a refused command changes nothing in the store.
COFFER=${1:?usage: test_cli.sh path/to/coffer}
. "$(dirname "$0")/lib.sh"
C() { "$COFFER" "$@"; }

# --- help and usage ----------------------------------------------------------
expect_rc 0 "--help exits 0" C --help
grep -q 'usage: coffer' "$WORK/out" && pass "--help prints usage" || fail "--help prints usage"
# Every command the CLI dispatches is listed in --help (destroy, run, rotate-key and rekey were
# missing once although the README promised the help lists every command).
for cmd in init put access versions list destroy run rotate-key rekey serve; do
	grep -qE "^  $cmd( |$)" "$WORK/out" && pass "--help lists $cmd" || fail "--help lists $cmd"
done
expect_rc 0 "--version exits 0" C --version
expect_rc 2 "no command is a usage error" C
expect_rc 2 "unknown command is a usage error" C frobnicate
expect_err_has "unknown command 'frobnicate'" "unknown command is named"
expect_rc 2 "unknown option is a usage error" C list --bogus
expect_rc 2 "put without a name is a usage error" C put

# --- the seed's workflow -----------------------------------------------------
expect_rc 0 "init creates the store" C init
expect_err_has "created store" "init says it created the store"
expect_err_has "created master key file" "init says it created the key file"
expect_eq 700 "$(stat -c %a "$COFFER_STORE")" "store folder is 0700"
expect_eq 600 "$(stat -c %a "$COFFER_STORE/master.key")" "key file is 0600"
expect_eq 600 "$(stat -c %a "$COFFER_STORE/coffer.db")" "database is 0600"
expect_rc 0 "init again is harmless" C init
expect_err_has "already initialized" "init again says so"

expect_eq 1 "$(C put db.password bleak_dearest_hanged_reigns 2>/dev/null)" "first put is version 1"
expect_eq 2 "$(printf %s crummy_goofed_caddy_radiant | C put db.password 2>/dev/null)" "second put (stdin) is version 2"
expect_eq crummy_goofed_caddy_radiant "$(C access db.password)" "access defaults to latest"
expect_eq crummy_goofed_caddy_radiant "$(C access db.password@latest)" "access @latest"
expect_eq crummy_goofed_caddy_radiant "$(C access db.password@LATEST)" "latest in any case"
expect_eq bleak_dearest_hanged_reigns "$(C access db.password@1)" "version 1 keeps the first value"
expect_eq 2 "$(C versions db.password | tail -n +2 | wc -l)" "versions lists two"
C versions db.password --json >"$WORK/v.json"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert [x["version"] for x in v]==["1","2"], v; assert all(x["state"]=="enabled" and x["size"]==27 for x in v)' "$WORK/v.json" \
	&& pass "versions --json is valid JSON with both versions" || fail "versions --json"
C list --json >"$WORK/l.json"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v==[{"name":"db.password","versions":2}], v' "$WORK/l.json" \
	&& pass "list --json" || fail "list --json"

# --- binary safety -----------------------------------------------------------
printf 'a\0b\377\376\0' >"$WORK/bin"
expect_eq 1 "$(C put bin --file "$WORK/bin" 2>/dev/null)" "binary value from --file"
C access bin >"$WORK/bin.out"
cmp -s "$WORK/bin" "$WORK/bin.out" && pass "NUL and invalid UTF-8 round-trip exactly" || fail "binary round-trip"
printf 'x\0y' | C put bin >/dev/null 2>&1
expect_eq "780079" "$(C access bin | od -An -tx1 | tr -d ' \n')" "binary value from stdin, no newline added"
head -c 65536 /dev/urandom >"$WORK/max"
expect_rc 0 "a value of exactly 64 KiB is accepted" C put big --file "$WORK/max"
C access big >"$WORK/max.out"
cmp -s "$WORK/max" "$WORK/max.out" && pass "64 KiB value round-trips" || fail "64 KiB round-trip"

# --- a larger value limit, per invocation ----------------------------------------------
head -c 65537 /dev/urandom >"$WORK/over"
expect_rc 0 "--max-value raises the limit for put" C --max-value 70000 put big2 --file "$WORK/over"
C access big2 >"$WORK/over.out"
cmp -s "$WORK/over" "$WORK/over.out" && pass "a value over 64 KiB round-trips with --max-value" || fail "big2 round-trip"
expect_rc 0 "COFFER_MAX_VALUE does the same" env COFFER_MAX_VALUE=70000 "$COFFER" put big2 --file "$WORK/over"
expect_rc 2 "the default limit still applies without it" C put big2 --file "$WORK/over"
for bad in 0 1048577 abc -5 12x ""; do
	expect_rc 2 "--max-value '$bad' is refused" C --max-value "$bad" list
done

# --- bad input: clear error, distinct exit code, nothing changed ---------------
snapshot() { C list --json; C versions db.password --json; }
before=$(snapshot)
expect_rc 2 "a value over 64 KiB is refused" C put db.password --file "$WORK/over"
expect_err_has "over the limit of 65536 bytes" "the limit is named"
expect_rc 2 "an empty value is refused" C put db.password ""
expect_err_has "empty value" "empty value is explained"
printf '' | C put db.password >/dev/null 2>"$WORK/err"; rc=$?
expect_eq 2 "$rc" "an empty stdin is refused"
long=$(printf 'n%.0s' $(seq 256))
for bad in "a/b" "a b" ".." ".env" "a'b" 'a"b' "../etc/passwd" "$long" "caf$(printf '\303\251')" "x;--" "a%b" 'a\b'; do
	expect_rc 2 "name '${bad:0:20}' is refused" C put "$bad" value
done
expect_err_has "invalid secret name" "a bad name is explained"
for v in 0 -1 1abc 99999999999999999999 01 ""; do
	expect_rc 2 "version '$v' is refused" C access "db.password@$v"
done
expect_err_has "invalid version id" "a bad version is explained"
expect_rc 3 "a version that does not exist is not-found" C access db.password@3
expect_err_has "secret 'db.password' version '3' not found" "not-found names secret and version"
expect_rc 3 "an unknown secret is not-found" C access nosuch
expect_rc 3 "versions of an unknown secret is not-found" C versions nosuch
expect_rc 1 "an unreadable --file is an error" C put x --file "$WORK/does-not-exist"
after=$(snapshot)
expect_eq "$before" "$after" "refused commands changed nothing"

# --- run: secrets into a child's environment -----------------------------------------
expect_eq "[crummy_goofed_caddy_radiant] [bleak_dearest_hanged_reigns]" \
	"$(C run --env DB=db.password --env OLD=db.password@1 -- sh -c 'echo "[$DB] [$OLD]"')" "run sets the variables"
expect_rc 3 "run with an unknown secret is not-found" C run --env X=nosuch -- true
expect_rc 2 "run with a bad variable name is a usage error" C run --env 1X=db.password -- true
expect_rc 2 "run refuses a value holding NUL" C run --env X=bin -- true
expect_rc 127 "run of a missing command says so" C run --env X=db.password -- /nonexistent/cmd
expect_rc 7 "run passes the child's exit code" C run --env X=db.password -- sh -c 'exit 7'

# --- keys ----------------------------------------------------------------------
chmod 644 "$COFFER_STORE/master.key"
expect_rc 5 "a group/world-readable key file is refused" C access db.password
expect_err_has "chmod 600" "the key-file error says how to fix it"
chmod 600 "$COFFER_STORE/master.key"
expect_rc 5 "a wrong COFFER_MASTER_KEY is refused" env COFFER_MASTER_KEY=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8= "$COFFER" access db.password
expect_err_has "wrong master key" "wrong key is explained"
expect_rc 5 "a malformed COFFER_MASTER_KEY is refused" env COFFER_MASTER_KEY=nope "$COFFER" list
grep -q bleak_dearest "$WORK/err" "$WORK/out" && fail "error output leaks a value" || pass "no value in error output"

# --- destroy -----------------------------------------------------------------------
C put doomed first >/dev/null 2>&1; C put doomed second >/dev/null 2>&1
expect_rc 2 "destroy needs an explicit version" C destroy doomed
expect_rc 0 "destroy NAME@latest" C destroy doomed@latest
expect_err_has "destroyed doomed@2" "destroy names the real id"
expect_eq first "$(C access doomed)" "latest moves back to version 1"
expect_rc 3 "a destroyed version is not found" C access doomed@2
expect_rc 3 "destroying it again is not found" C destroy doomed@2
expect_eq 3 "$(C put doomed third 2>/dev/null)" "the destroyed id is not reused"
expect_eq "enabled destroyed enabled" "$(C versions doomed | tail -n +2 | awk '{print $4}' | tr '\n' ' ' | sed 's/ $//')" "versions shows the destroyed one"
expect_eq 2 "$(C list | awk '$1 == "doomed" {print $2}')" "list counts only the versions that can be read"

# --- key rotation ----------------------------------------------------------------
expect_rc 0 "rotate-key adds a data key and re-encrypts" C rotate-key
expect_err_has "versions re-encrypted under data key 2" "rotate-key reports what it did"
expect_eq bleak_dearest_hanged_reigns "$(C access db.password@1)" "old versions readable after rotate-key"
expect_eq "2 2" "$(C versions db.password --json | python3 -c 'import json,sys; print(*[v["key_id"] for v in json.load(sys.stdin)])')" "versions --json shows every version under the new key"
# What killed key operations leave (temporaries holding random keys) goes at the next open.
for f in master.key.tmpAbC123 master.key.new.tmpXyZ789; do printf 'x\n' >"$COFFER_STORE/$f"; chmod 600 "$COFFER_STORE/$f"; done
expect_rc 0 "the store opens beside key-file temporaries" C list
[ ! -e "$COFFER_STORE/master.key.tmpAbC123" ] && [ ! -e "$COFFER_STORE/master.key.new.tmpXyZ789" ] && pass "the next open removes them" || fail "key-file temporaries left"
old_key=$(cat "$COFFER_STORE/master.key")
expect_rc 0 "rekey replaces the default key file in place" C rekey
expect_err_has "restart them with the new key" "rekey says what to do with running servers"
[ "$(cat "$COFFER_STORE/master.key")" != "$old_key" ] && pass "the key file holds a new key" || fail "key file unchanged"
expect_eq 600 "$(stat -c %a "$COFFER_STORE/master.key")" "the new key file is 0600"
expect_eq crummy_goofed_caddy_radiant "$(C access db.password)" "readable with the new key"
printf '%s\n' "$old_key" >"$WORK/old.key"; chmod 600 "$WORK/old.key"
expect_rc 5 "the old master key no longer opens the store" C --key-file "$WORK/old.key" list
expect_rc 0 "rekey to a new key file elsewhere" C rekey --new-key-file "$WORK/elsewhere.key"
expect_eq crummy_goofed_caddy_radiant "$(C --key-file "$WORK/elsewhere.key" access db.password)" "opens with --key-file"
expect_rc 5 "the default key file no longer opens it" C list
cp "$WORK/elsewhere.key" "$COFFER_STORE/master.key.new"
expect_rc 5 "a leftover master.key.new gets a hint" C list
expect_err_has "interrupted 'coffer rekey'" "the hint names the leftover file"
mv "$COFFER_STORE/master.key.new" "$COFFER_STORE/master.key"
expect_rc 0 "moving the new key into place restores access" C list
expect_rc 2 "rekey with a key from the environment needs --new-key-file" env COFFER_MASTER_KEY="$(cat "$COFFER_STORE/master.key")" "$COFFER" rekey
expect_err_has "--new-key-file" "and says so"

# --- a store folder open to others is refused ------------------------------------------------
# (group or others could read the file names, or with write access swap or plant files.)
before=$(snapshot)
for mode in 750 705 770 777 701; do
	chmod "$mode" "$COFFER_STORE"
	expect_rc 4 "a store folder of mode $mode is refused (access)" C access db.password
	expect_err_has "chmod 700 '$COFFER_STORE'" "mode $mode: the error says which chmod to run"
	expect_rc 4 "a store folder of mode $mode is refused (put)" C put db.password more
done
chmod 700 "$COFFER_STORE"
expect_eq "$before" "$(snapshot)" "refused puts on an open folder changed nothing"
expect_rc 0 "after chmod 700 the store opens again" C access db.password
mkdir -m 755 "$WORK/open"
expect_rc 4 "init in an existing folder open to others is refused" C --store "$WORK/open" init
expect_err_has "chmod 700" "init says which chmod to run"
expect_eq "" "$(ls -A "$WORK/open")" "and created nothing in it"
expect_rc 3 "a read command on a folder that is no store says so (no chmod advice)" C --store "$WORK/open" list
expect_err_has "no store at" "it says there is no store"

# --- other store folders --------------------------------------------------------
expect_rc 0 "--store names another store" C --store "$WORK/other" put k v
expect_eq v "$(C --store "$WORK/other" access k)" "--store reads it back"
expect_rc 3 "the other store does not leak into the default" C access k
echo notadir >"$WORK/file"
expect_rc 2 "a store path that is a file is refused" C --store "$WORK/file" list
expect_rc 2 "an unknown URL scheme is refused" C --store "ftp://x/y" list
finish
