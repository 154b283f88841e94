#!/usr/bin/env bash
# The lifecycle commands of the CLI (issue 9, docs/lifecycle.md) on a local store: disable,
# enable, label, put --if-version/--request-id, delete/restore, describe, meta, list pages,
# versions with state and labels, audit and audit verify; exit codes 8 (state refusal) and 9
# (check-and-set mismatch) as the table says; --json parses on success and failure. Then the
# audit chain: verify passes after mixed CLI requests, and after an entry is deleted, edited or
# two are swapped with sqlite3, verify fails and names the broken entry.
COFFER=$(realpath "${1:?usage: test_lifecycle.sh path/to/coffer}")
. "$(dirname "$0")/lib.sh"
unset COFFER_FORMAT
C() { "$COFFER" "$@"; }
is_json() { python3 -m json.tool "$1" >/dev/null 2>&1; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$WORK/out" "$1"; }
json_err_exit() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["exit"])' "$WORK/err"; }

C put db v1 >/dev/null && C put db v2 >/dev/null && C put db v3 >/dev/null || fail "setup puts"

# --- disable / enable ------------------------------------------------------------------------
expect_rc 0 "disable db@3" C disable db@3
expect_eq "v2" "$(C access db)" "latest is the newest enabled version after disable"
expect_rc 8 "access of a disabled version is exit 8" C access db@3
expect_err_has "disabled" "the error says disabled"
expect_rc 8 "... also with --json" C access db@3 --json
is_json "$WORK/err" && [ "$(json_err_exit)" = 8 ] && pass "JSON error says exit 8" || fail "JSON error of a disabled access: $(cat "$WORK/err")"
expect_rc 2 "disable without @VERSION is a usage error" C disable db
expect_rc 3 "disable of a missing version is not found" C disable db@9
expect_rc 0 "enable db@3 --json" C enable db@3 --json
expect_eq "3 enabled" "$(jget 'd["version"], d["state"]')" "enable --json names the version and state"
expect_eq "v3" "$(C access db)" "latest is back after enable"
expect_rc 2 "enable of latest is refused (an id or label)" C enable db@latest

# --- labels -----------------------------------------------------------------------------------
expect_rc 0 "label db stable 1" C label db stable 1
expect_eq "v1" "$(C access db@stable)" "NAME@LABEL reads the labelled version"
expect_rc 0 "label moves (stable -> 2) --json" C label db stable 2 --json
expect_eq "2" "$(jget 'd["version"]')" "label --json gives the version"
expect_eq "v2" "$(C access db@stable)" "the label moved"
C versions db --json >"$WORK/out" 2>"$WORK/err"
expect_eq "['previous', 'stable'] ['latest'] disabled=0" "$(jget 'd[1]["labels"], d[2]["labels"], "disabled=%d" % sum(v["state"]=="disabled" for v in d)')" "versions --json shows labels per version"
C versions db >"$WORK/out"
grep -qE '^2 .* enabled .*stable' "$WORK/out" && pass "versions (text) shows labels" || fail "versions text: $(cat "$WORK/out")"
expect_rc 2 "a label that reads as a version id is refused" C label db 7x 1
expect_rc 2 "latest cannot be set" C label db latest 1
expect_rc 2 "label without VERSION or --delete is a usage error" C label db stable
expect_rc 2 "label --delete with a version is a usage error" C label db stable 1 --delete
expect_rc 0 "label --delete" C label db stable --delete
expect_rc 3 "the deleted label no longer resolves" C access db@stable

# --- check-and-set and request ids ------------------------------------------------------------
expect_rc 9 "put --if-version with the wrong version is exit 9" C put db x --if-version 2
expect_err_has "check-and-set" "the error says check-and-set"
expect_rc 9 "... also with --json" C put db x --if-version 2 --json
is_json "$WORK/err" && [ "$(json_err_exit)" = 9 ] && pass "JSON error says exit 9" || fail "JSON CAS error: $(cat "$WORK/err")"
expect_eq "v3" "$(C access db)" "a CAS mismatch stored nothing"
expect_eq "4" "$(C put db x --if-version 3)" "put --if-version with the right version stores"
expect_eq "1" "$(C put fresh a --if-version 0)" "--if-version 0 on a new secret"
expect_rc 9 "--if-version 0 on a secret with versions is exit 9" C put fresh b --if-version 0
expect_eq "5" "$(C put db y --request-id req-1)" "put --request-id"
expect_rc 0 "the same request id and value again --json" C put db y --request-id req-1 --json
expect_eq "5 True" "$(jget 'd["version"], d["replayed"]')" "a retry answers the first version, replayed"
expect_eq "5" "$(C versions db --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["version"])')" "the retry stored nothing"
expect_rc 2 "the same request id with another value is an error" C put db z --request-id req-1
expect_rc 2 "an empty request id is a usage error" C put db z --request-id ''

# --- meta / describe --------------------------------------------------------------------------
expect_rc 2 "meta without anything to set is a usage error" C meta db
expect_rc 0 "meta --description --tag --tag --max-versions" C meta db --description "the database" --tag env=prod --tag team=core --max-versions 10 --json
expect_eq "the database {'env': 'prod', 'team': 'core'} 10" "$(jget 'd["description"], d["tags"], d["max_versions"]')" "meta --json shows what is set"
expect_rc 0 "meta --tag team (remove) --tag tier=1" C meta db --tag team --tag tier=1
expect_rc 0 "describe --json" C describe db --json
expect_eq "{'env': 'prod', 'tier': '1'} 5 4 5 10 False" "$(jget 'd["tags"], d["current_version"], d["previous_version"], d["last_version"], d["max_versions"], d["deleted"]')" "describe --json: tags merged, versions, max"
expect_rc 0 "describe (text)" C describe db
grep -q '^description: *the database$' "$WORK/out" && grep -q '^current version: *5$' "$WORK/out" && pass "describe text" || fail "describe text: $(cat "$WORK/out")"
expect_rc 3 "describe of a missing secret is not found" C describe nosuch --json
[ ! -s "$WORK/out" ] && is_json "$WORK/err" && pass "... with nothing on stdout and JSON on stderr" || fail "describe nosuch output"
expect_rc 2 "--tag without a key is a usage error" C meta db --tag =x

# --- list: prefix and pages -------------------------------------------------------------------
for i in 1 2 3 4 5; do C put "app$i" v >/dev/null; done
expect_rc 0 "list --json is still an array" C list --json
expect_eq "list" "$(jget 'type(d).__name__')" "list --json stays an array without paging"
C list --prefix app --json >"$WORK/out"
expect_eq "app1 app2 app3 app4 app5" "$(jget '" ".join(x["name"] for x in d)')" "list --prefix"
C list --prefix app --limit 2 --json >"$WORK/out"
expect_eq "app1 app2" "$(jget '" ".join(x["name"] for x in d["secrets"])')" "list --limit: one page"
tok=$(jget 'd["next_page_token"]')
[ -n "$tok" ] && pass "a next_page_token" || fail "no next_page_token"
seen="app1 app2"
while [ -n "$tok" ]; do
	C list --prefix app --limit 2 --page-token "$tok" --json >"$WORK/out" || { fail "a page"; break; }
	seen="$seen $(jget '" ".join(x["name"] for x in d["secrets"])')"
	tok=$(jget 'd["next_page_token"]')
done
expect_eq "app1 app2 app3 app4 app5" "$(echo $seen)" "the pages together list every name once"
expect_rc 0 "list --limit (text) says how to get the next page" C list --prefix app --limit 2
expect_err_has "--page-token" "... on stderr"
expect_rc 2 "a bad page token is a usage error" C list --page-token '!!!'
expect_rc 2 "--limit 0 is a usage error" C list --limit 0

# --- delete / restore -------------------------------------------------------------------------
expect_rc 0 "delete app1 --json" C delete app1 --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["purge_at_unix_ms"] > 0 and d["purge_at"]' "$WORK/out" && pass "delete --json gives the time it goes for good" || fail "delete --json: $(cat "$WORK/out")"
expect_rc 8 "access of a deleted secret is exit 8" C access app1
expect_err_has "scheduled for deletion" "the error says scheduled for deletion"
expect_rc 8 "put to a deleted secret is exit 8" C put app1 v
C list --json >"$WORK/out"
expect_eq "False" "$(jget '"app1" in [x["name"] for x in d]')" "a deleted secret is hidden from list"
expect_rc 0 "describe shows a deleted secret" C describe app1 --json
expect_eq "True" "$(jget 'd["deleted"]')" "describe says deleted"
expect_rc 0 "restore app1" C restore app1
expect_eq "v" "$(C access app1)" "restored secret reads again"
expect_rc 2 "restore of a secret not deleted is an error" C restore app1
expect_rc 0 "delete --recovery-days 3" C delete app2 --recovery-days 3 --json
expect_rc 2 "--recovery-days 31 is a usage error" C delete app3 --recovery-days 31
expect_rc 2 "--force with --recovery-days is a usage error" C delete app3 --force --recovery-days 2
expect_rc 0 "delete --force" C delete app3 --force
expect_rc 3 "a force-deleted secret is gone" C access app3
expect_rc 3 "restore after --force: not found" C restore app3

# --- audit ------------------------------------------------------------------------------------
expect_rc 0 "audit --json" C audit --json
python3 - "$WORK/out" <<'EOF' && pass "audit --json lists the CLI's requests, principal cli:USER" || fail "audit --json content: $(head -c 400 "$WORK/out")"
import json, sys
d = json.load(open(sys.argv[1]))
acts = {e["action"] for e in d}
assert {"put", "disable", "enable", "delete", "restore"} <= acts, acts
assert all(e["principal"].startswith("cli:") for e in d), {e["principal"] for e in d}
EOF
C audit --secret fresh --json >"$WORK/out"
expect_eq "{'fresh'}" "$(jget 'set(e["secret"] for e in d)')" "audit --secret filters"
C audit --since 2999-01-01 --json >"$WORK/out"
expect_eq "0" "$(jget 'len(d)')" "audit --since a future day: nothing"
expect_rc 2 "a bad --since is a usage error" C audit --since yesterday
expect_rc 2 "audit with another argument is a usage error" C audit check
expect_rc 0 "audit (text)" C audit --secret db
head -1 "$WORK/out" | grep -q '^ID ' && pass "audit text has a header" || fail "audit text: $(head -2 "$WORK/out")"
! grep -rq "req-1" "$WORK/out" && pass "no request id in clear in the audit output" || fail "request id in the audit output"
expect_rc 0 "audit verify" C audit verify
expect_rc 0 "audit verify --json" C audit verify --json
expect_eq "True" "$(jget 'd["ok"] and d["entries"] > 20')" "audit verify --json: ok, every entry"

# Tampering, each on a fresh copy of the store: delete, edit and swap entries with sqlite3.
if command -v sqlite3 >/dev/null; then
	db=$(ls "$COFFER_STORE"/*.db 2>/dev/null | head -1)
	tbl=$(sqlite3 "$db" ".tables" | tr ' ' '\n' | grep -i audit | head -1)
	cols=$(sqlite3 "$db" "PRAGMA table_info($tbl)" | cut -d'|' -f2 | tr '\n' ' ')
	tamper() { # tamper DESC WANT_ID SQL
		rm -rf "$WORK/t" && cp -a "$COFFER_STORE" "$WORK/t"
		sqlite3 "$WORK/t/$(basename "$db")" "$3" || { fail "$1: sqlite3"; return; }
		C -s "$WORK/t" audit verify >"$WORK/out" 2>"$WORK/err"
		local rc=$?
		[ "$rc" = 5 ] && grep -q "entry $2\b" "$WORK/err" && pass "$1: verify fails (exit 5) naming entry $2" ||
			fail "$1: exit $rc, $(cat "$WORK/err")"
		C -s "$WORK/t" audit verify --json >"$WORK/out" 2>"$WORK/err"
		is_json "$WORK/err" && pass "$1: the JSON error parses" || fail "$1: JSON error"
	}
	idcol=$(echo "$cols" | tr ' ' '\n' | grep -E '^id$' | head -1)
	actcol=$(echo "$cols" | tr ' ' '\n' | grep -E '^action$' | head -1)
	if [ -n "$tbl" ] && [ -n "$idcol" ] && [ -n "$actcol" ]; then
		tamper "an entry deleted (the next one is named: the gap)" 11 "DELETE FROM $tbl WHERE id = 10"
		tamper "an entry edited" 7 "UPDATE $tbl SET $actcol = 'access' WHERE id = 7"
		rest=$(echo "$cols" | tr ' ' '\n' | grep -v '^id$' | grep . | paste -sd, -)
		tamper "two entries swapped" 4 "CREATE TEMP TABLE sw AS SELECT * FROM $tbl WHERE id IN (4, 5); DELETE FROM $tbl WHERE id IN (4, 5); INSERT INTO $tbl (id, $rest) SELECT 9 - id, $rest FROM sw"
	else
		fail "the audit table (got '$tbl' with columns $cols)"
	fi
else
	echo "skip: no sqlite3 for the tampering checks"
fi

finish
