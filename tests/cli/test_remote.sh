#!/usr/bin/env bash
# Remote mode: `coffer --server` against a real `coffer serve` on loopback (started here, on its
# own store folder, with a policy file and tokens). The same scenario runs once on a local store
# and once through the server; their outputs (text and --json, stdout, stderr and exit codes)
# must be identical. Then: a token without `admin`, a wrong token, the server down, the local-only
# commands refused, no master key looked for, the token kept out of argv and a child's environment.
COFFER=$(realpath "${1:?usage: test_remote.sh path/to/coffer}")
. "$(dirname "$0")/lib.sh"
unset COFFER_FORMAT
C() { "$COFFER" "$@"; }

SERVER_PID=
TLS_PID=
stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
		SERVER_PID=
	fi
}
trap 'stop_server; [ -n "$TLS_PID" ] && kill -TERM "$TLS_PID" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

rand_token() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
OPS_TOKEN=ops-$(rand_token)
APP_TOKEN=app-$(rand_token)
cat >"$WORK/policy" <<EOF
allow ops put,access,admin *
allow app put,access *
EOF
printf 'ops %s\napp %s\n' "$OPS_TOKEN" "$APP_TOKEN" >"$WORK/tokens"
chmod 600 "$WORK/tokens" "$WORK/policy"
printf '%s\n' "$OPS_TOKEN" >"$WORK/ops.token"
chmod 600 "$WORK/ops.token"

# --- the server: its own store, port 0 (the port it got is in its first line) ------------
"$COFFER" serve --store "$WORK/srv" --listen 127.0.0.1:0 --listen "cli=unix:$WORK/srv.sock" \
	--policy "$WORK/policy" --tokens "$WORK/tokens" --quiet >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
ADDR=
for _ in $(seq 600); do # until it says where it listens (or exits)
	ADDR=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$WORK/serve.log" | head -1 | cut -d' ' -f3)
	[ -n "$ADDR" ] && grep -q "listening on unix:" "$WORK/serve.log" && break
	kill -0 "$SERVER_PID" 2>/dev/null || break
	sleep 0.05
done
if [ -z "$ADDR" ]; then
	fail "coffer serve started: $(cat "$WORK/serve.log")"
	finish
	exit 1
fi
pass "coffer serve listens on $ADDR"

# --- the scenario, recorded step by step: stdout, stderr and exit code of each --------------
# Times differ between two runs: they are replaced by T in the text and JSON output.
normalize() {
	sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}( |T)[0-9]{2}:[0-9]{2}:[0-9]{2}Z?/T/g' \
		-e 's/"created_unix_ms":[0-9]+/"created_unix_ms":"T"/g' \
		-e 's/"purge_at_unix_ms":[1-9][0-9]*/"purge_at_unix_ms":"T"/g' \
		-e 's/"updated_unix_ms":[0-9]+/"updated_unix_ms":"T"/g'
}
step() { # step DIR NAME CMD...
	local dir=$1 name=$2
	shift 2
	"$@" >"$dir/$name.out" 2>"$dir/$name.err"
	echo $? >"$dir/$name.rc"
	normalize <"$dir/$name.out" >"$dir/$name.out.n" && mv "$dir/$name.out.n" "$dir/$name.out"
}
scenario() { # scenario DIR: run against whatever C reaches (store or server)
	local d=$1
	mkdir -p "$d"
	step "$d" 01-put C put db.password bleak_dearest_hanged_reigns
	printf %s crummy_goofed_caddy_radiant >"$WORK/v2"
	step "$d" 02-put-stdin C put db.password --file - <"$WORK/v2"
	step "$d" 03-put-json C put api-key s3cr3t-value --json
	printf 'a\0b\377\n' >"$WORK/bin"
	step "$d" 04-put-binary-trim C put bin --trim --file "$WORK/bin" --json
	step "$d" 05-access-latest C access db.password
	step "$d" 06-access-by-id C access db.password@1
	step "$d" 07-access-json C access db.password --json
	step "$d" 08-access-id-json C access db.password@1 --json
	step "$d" 09-access-binary C access bin --json
	step "$d" 10-versions C versions db.password
	step "$d" 11-versions-json C versions db.password --json
	step "$d" 12-list C list
	step "$d" 13-list-json C list --json
	step "$d" 14-destroy C destroy db.password@1
	step "$d" 15-destroy-latest-json C destroy api-key@latest --json
	step "$d" 16-versions-after C versions db.password --json
	step "$d" 17-list-after C list --json
	step "$d" 18-access-destroyed C access db.password@1
	step "$d" 19-access-destroyed-json C access db.password@1 --json
	step "$d" 20-access-nosuch C access nosuch
	step "$d" 21-versions-nosuch-json C versions nosuch --json
	step "$d" 22-destroy-again C destroy db.password@1
	step "$d" 23-access-latest-after C access api-key
	step "$d" 24-run C run --env PW=db.password -- sh -c 'printf "%s" "$PW"'
	step "$d" 25-put-after C put db.password third
	step "$d" 26-versions-final C versions db.password
	# the lifecycle (issue 9): the same commands, the same outputs and exit codes
	step "$d" 27-disable C disable db.password@3
	step "$d" 28-disable-json C disable db.password@3 --json
	step "$d" 29-access-disabled C access db.password@3
	step "$d" 30-access-disabled-json C access db.password@3 --json
	step "$d" 31-access-latest-disabled C access db.password
	step "$d" 32-enable-json C enable db.password@3 --json
	step "$d" 33-label C label db.password stable 2
	step "$d" 34-label-move-json C label db.password stable 3 --json
	step "$d" 35-access-label C access db.password@stable
	step "$d" 36-versions-labels C versions db.password
	step "$d" 37-versions-labels-json C versions db.password --json
	step "$d" 38-label-bad C label db.password 7x 2
	step "$d" 39-label-delete-json C label db.password stable --delete --json
	step "$d" 40-access-label-gone C access db.password@stable
	step "$d" 41-delete-json C delete bin --recovery-days 2 --json
	step "$d" 42-access-deleted C access bin
	step "$d" 43-access-deleted-json C access bin --json
	step "$d" 44-list-deleted C list --json
	step "$d" 45-restore-json C restore bin --json
	step "$d" 46-restore-again C restore bin
	step "$d" 47-access-restored C access bin --json
	step "$d" 48-put-to-force C put tmp.force x
	step "$d" 48-delete-force C delete tmp.force --force --json
	step "$d" 49-access-forced C access tmp.force
	step "$d" 50-delete-bad C delete bin --force --recovery-days 3
	step "$d" 51-enable-latest C enable db.password@latest
	step "$d" 52-put-cas-bad C put db.password four --if-version 2
	step "$d" 53-put-cas-bad-json C put db.password four --if-version 2 --json
	step "$d" 54-put-cas-ok C put db.password four --if-version 3 --json
	step "$d" 55-put-rid C put db.password five --request-id rid-1
	step "$d" 56-put-rid-again C put db.password five --request-id rid-1 --json
	step "$d" 57-put-rid-reused C put db.password six --request-id rid-1
	step "$d" 58-put-cas-new C put cas.new x --if-version 0
	step "$d" 59-list-page C list --limit 2 --json
	step "$d" 60-list-page-text C list --limit 2
	step "$d" 61-list-prefix C list --prefix db --json
	step "$d" 62-list-prefix-page C list --prefix c --limit 1 --json
	step "$d" 63-describe C describe db.password
	step "$d" 64-describe-json C describe db.password --json
	step "$d" 65-describe-nosuch C describe nosuch --json
	step "$d" 66-meta C meta db.password --description "the db" --tag env=prod --tag team=core --max-versions 10 --json
	step "$d" 67-meta-merge C meta db.password --tag team --tag tier=1
	step "$d" 68-describe-meta C describe db.password --json
	step "$d" 69-meta-nosuch C meta nosuch --description x
	step "$d" 70-meta-bad-tag C meta db.password --tag =x
}

(
	export COFFER_STORE="$WORK/local"
	"$COFFER" init >/dev/null 2>&1
	scenario "$WORK/run-local"
)
(
	export COFFER_SERVER=$ADDR COFFER_TOKEN=$OPS_TOKEN
	export COFFER_STORE="$WORK/not-used"
	scenario "$WORK/run-remote"
)
if diff -r "$WORK/run-local" "$WORK/run-remote" >"$WORK/diff"; then
	pass "the scenario's outputs are identical on a local store and through --server"
else
	fail "local and remote outputs differ: $(head -c 2000 "$WORK/diff")"
fi
# The comparison is worth something only if the scenario did what it should.
R=$WORK/run-remote
expect_eq "1 2" "$(cat "$R/01-put.out") $(cat "$R/02-put-stdin.out")" "put twice: versions 1 and 2"
expect_eq crummy_goofed_caddy_radiant "$(cat "$R/05-access-latest.out")" "access latest"
expect_eq bleak_dearest_hanged_reigns "$(cat "$R/06-access-by-id.out")" "access by id"
python3 - "$R" <<'EOF' && pass "the JSON forms parse and hold what was put" || fail "JSON forms"
import json, sys, os
d = sys.argv[1]
j = lambda n: json.load(open(os.path.join(d, n + ".out")))
assert j("03-put-json") == {"name": "api-key", "version": "1"}, j("03-put-json")
assert j("04-put-binary-trim")["version"] == "1"
a = j("07-access-json")
assert a["version"] == "2" and a["value"] == "crummy_goofed_caddy_radiant", a
assert j("08-access-id-json")["value"] == "bleak_dearest_hanged_reigns"
b = j("09-access-binary")
assert b["value_b64"] == "YQBi/w==" and "value" not in b, b
v = j("11-versions-json")
assert [x["version"] for x in v] == ["1", "2"] and all(x["state"] == "enabled" for x in v), v
assert j("13-list-json") == [{"name": "api-key", "versions": 1}, {"name": "bin", "versions": 1},
                             {"name": "db.password", "versions": 2}], j("13-list-json")
assert j("15-destroy-latest-json") == {"name": "api-key", "version": "1", "state": "destroyed"}
assert [x["state"] for x in j("16-versions-after")] == ["destroyed", "enabled"]
assert j("17-list-after")[0] == {"name": "api-key", "versions": 0}
e = json.load(open(os.path.join(d, "19-access-destroyed-json.err")))
assert e["error"]["code"] == "ENOTFOUND" and e["error"]["exit"] == 3, e
e = json.load(open(os.path.join(d, "21-versions-nosuch-json.err")))
assert e["error"]["code"] == "ENOTFOUND", e
# the lifecycle
rc = lambda n: int(open(os.path.join(d, n + ".rc")).read())
assert j("28-disable-json") == {"name": "db.password", "version": "3", "state": "disabled"}
assert rc("29-access-disabled") == 8, rc("29-access-disabled")
e = json.load(open(os.path.join(d, "30-access-disabled-json.err")))
assert e["error"]["code"] == "EDISABLED" and e["error"]["exit"] == 8, e
assert open(os.path.join(d, "31-access-latest-disabled.out")).read() == "crummy_goofed_caddy_radiant"
assert j("34-label-move-json") == {"name": "db.password", "label": "stable", "version": "3"}
assert open(os.path.join(d, "35-access-label.out")).read() == "third"
v = j("37-versions-labels-json")
assert v[2]["labels"] == ["latest", "stable"] and v[1]["labels"] == ["previous"], v
assert rc("38-label-bad") == 2 and rc("40-access-label-gone") == 3
assert j("41-delete-json")["purge_at_unix_ms"] == "T" and j("41-delete-json")["purge_at"] == "T"
assert rc("42-access-deleted") == 8
e = json.load(open(os.path.join(d, "43-access-deleted-json.err")))
assert e["error"]["code"] == "EDELETED" and e["error"]["exit"] == 8, e
assert "bin" not in [x["name"] for x in j("44-list-deleted")]
assert j("45-restore-json") == {"name": "bin", "restored": True}
assert rc("46-restore-again") == 2
assert j("47-access-restored")["value_b64"] == "YQBi/w=="
assert j("48-delete-force")["purge_at_unix_ms"] == 0 and rc("49-access-forced") == 3
assert rc("50-delete-bad") == 2 and rc("51-enable-latest") == 2
assert rc("52-put-cas-bad") == 9
e = json.load(open(os.path.join(d, "53-put-cas-bad-json.err")))
assert e["error"]["code"] == "ECONFLICT" and e["error"]["exit"] == 9, e
assert j("54-put-cas-ok")["version"] == "4"
assert open(os.path.join(d, "55-put-rid.out")).read() == "5\n"
assert j("56-put-rid-again")["version"] == "5" and j("56-put-rid-again")["replayed"] is True
assert rc("57-put-rid-reused") == 2 and rc("58-put-cas-new") == 0
p = j("59-list-page")
assert len(p["secrets"]) == 2 and p["next_page_token"], p
assert [x["name"] for x in j("61-list-prefix")] == ["db.password"]
assert [x["name"] for x in j("62-list-prefix-page")["secrets"]] == ["cas.new"]
de = j("64-describe-json")
assert de["current_version"] == "5" and de["labels"]["latest"] == "5" and de["deleted"] is False, de
assert rc("65-describe-nosuch") == 3
assert j("66-meta") == {"name": "db.password", "description": "the db",
                        "tags": {"env": "prod", "team": "core"}, "max_versions": 10}, j("66-meta")
de = j("68-describe-meta")
assert de["tags"] == {"env": "prod", "tier": "1"} and de["max_versions"] == 10, de
assert rc("69-meta-nosuch") == 3 and rc("70-meta-bad-tag") == 2
assert open(os.path.join(d, "21-versions-nosuch-json.out")).read() == ""
EOF
expect_eq "3 3 3 3" "$(cat "$R/18-access-destroyed.rc") $(cat "$R/20-access-nosuch.rc") $(cat "$R/21-versions-nosuch-json.rc") $(cat "$R/22-destroy-again.rc")" \
	"not found: exit 3 through the server"
expect_eq crummy_goofed_caddy_radiant "$(cat "$R/24-run.out")" "run gets a secret through the server"
expect_eq 3 "$(cat "$R/25-put-after.out")" "put after a destroy: the next id"
# What the server wrote is in its own store (read with libcoffer through the CLI, afterwards).

# --- --server, --token-file, the Unix socket --------------------------------------------
expect_rc 0 "--server with --token-file" C --server "$ADDR" --token-file "$WORK/ops.token" list
expect_eq "$(env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "$ADDR" list --json | python3 -c 'import json,sys; print(" ".join(x["name"] for x in json.load(sys.stdin)))')" \
	"$(C --server "$ADDR" --token-file "$WORK/ops.token" list --json | python3 -c 'import json,sys; print(" ".join(x["name"] for x in json.load(sys.stdin)))')" \
	"--token-file sees the same names"
expect_rc 0 "COFFER_TOKEN_FILE" env COFFER_TOKEN_FILE="$WORK/ops.token" "$COFFER" --server "$ADDR" versions db.password
expect_rc 0 "--server unix:PATH" env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "unix:$WORK/srv.sock" access db.password@2
expect_eq crummy_goofed_caddy_radiant "$(cat "$WORK/out")" "... reads the value over the Unix socket"
expect_rc 0 "--token on the command line (accepted, documented as visible)" C --server "$ADDR" --token "$OPS_TOKEN" list
expect_rc 2 "--token and --token-file together" C --server "$ADDR" --token "$OPS_TOKEN" --token-file "$WORK/ops.token" list
expect_rc 2 "COFFER_TOKEN and COFFER_TOKEN_FILE together" env COFFER_TOKEN="$OPS_TOKEN" COFFER_TOKEN_FILE="$WORK/ops.token" "$COFFER" --server "$ADDR" list
: >"$WORK/empty.token"
chmod 600 "$WORK/empty.token"
expect_rc 2 "an empty token file" C --server "$ADDR" --token-file "$WORK/empty.token" list
expect_err_has "holds no token" "... says so"
cp "$WORK/ops.token" "$WORK/open.token"
chmod 644 "$WORK/open.token"
expect_rc 0 "a token file open to others still works" C --server "$ADDR" --token-file "$WORK/open.token" list
expect_err_has "chmod 600" "... with a warning"
expect_rc 1 "a missing token file" C --server "$ADDR" --token-file "$WORK/nosuch.token" list
expect_err_has "cannot open the token file" "... says so"

# --- a token without admin: put and access as its policy allows, no admin commands ----------
A() { COFFER_TOKEN=$APP_TOKEN "$COFFER" --server "$ADDR" "$@"; }
expect_rc 0 "no-admin token: put" A put app.key appvalue-1
expect_rc 0 "no-admin token: access" A access app.key
expect_eq appvalue-1 "$(cat "$WORK/out")" "no-admin token: access reads its value"
expect_rc 0 "no-admin token: access --json" A access app.key --json
expect_rc 4 "no-admin token: versions is PERMISSION_DENIED (exit 4)" A versions app.key
expect_err_has "admin" "... the message names the admin grant"
expect_rc 4 "no-admin token: list is refused" A list
expect_rc 4 "no-admin token: destroy is refused" A destroy app.key@1
expect_rc 4 "no-admin token: list --json is refused" A list --json
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["code"]=="EPERM" and e["exit"]==4, e' "$WORK/err" \
	&& pass "... as a JSON error EPERM" || fail "no-admin JSON error: $(cat "$WORK/err")"
[ ! -s "$WORK/out" ] && pass "... with nothing on stdout" || fail "no-admin list wrote to stdout"
expect_rc 0 "the refused destroy destroyed nothing" env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "$ADDR" versions app.key --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert [x["state"] for x in v]==["enabled"], v' "$WORK/out" \
	&& pass "... app.key@1 still enabled" || fail "app.key@1 state: $(cat "$WORK/out")"

expect_rc 4 "no-admin token: disable is refused" A disable app.key@1
expect_rc 4 "no-admin token: label is refused" A label app.key stable 1
expect_rc 4 "no-admin token: delete is refused" A delete app.key
expect_rc 4 "no-admin token: restore is refused" A restore app.key
expect_rc 4 "no-admin token: audit verify is refused" A audit verify
expect_rc 0 "the refused lifecycle calls changed nothing" env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "$ADDR" access app.key

# --- the lifecycle through the server: what needs admin, what is not served -----------------
O() { env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "$ADDR" "$@"; }
expect_rc 4 "no-admin token: put --if-version (Admin/Put) is refused" A put app.key v --if-version 1
expect_rc 4 "no-admin token: describe is refused" A describe app.key
expect_rc 0 "audit verify through the server" O audit verify --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] and d["entries"] > 0, d' "$WORK/out" \
	&& pass "... ok, with the entries checked" || fail "audit verify --json: $(cat "$WORK/out")"
expect_rc 4 "no-admin token: meta is refused" A meta app.key --description x
expect_rc 4 "no-admin token: audit is refused" A audit
expect_rc 0 "audit through the server (--json)" O audit --json
python3 - "$WORK/out" <<'EOF' && pass "... the server's log: entries in order, no value or request id in it" || fail "remote audit --json: $(head -c 300 "$WORK/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d) > 10 and [e["id"] for e in d] == sorted(e["id"] for e in d), d[:3]
text = json.dumps(d)
for canary in ("bleak_dearest_hanged_reigns", "crummy_goofed_caddy_radiant", "rid-1"):
    assert canary not in text, canary
EOF
grep -q "$OPS_TOKEN" "$WORK/out" && fail "the token is in the audit output" || pass "... nor the token"
expect_rc 0 "audit --secret through the server" O audit --secret db.password --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d and {e["secret"] for e in d} == {"db.password"}, d' "$WORK/out" \
	&& pass "... only that secret's entries" || fail "remote audit --secret: $(head -c 300 "$WORK/out")"
expect_rc 0 "audit (text) through the server" O audit --since 2000-01-01
head -1 "$WORK/out" | grep -q '^ID ' && pass "... with its header" || fail "remote audit text: $(head -2 "$WORK/out")"

# --- a wrong token, no token ----------------------------------------------------------------
expect_rc 4 "a wrong token: exit 4" env COFFER_TOKEN=wrong-$(rand_token) "$COFFER" --server "$ADDR" access db.password
expect_err_has "invalid bearer token" "... says the token is invalid"
expect_rc 4 "a wrong token: admin command, exit 4" env COFFER_TOKEN=wrong-$(rand_token) "$COFFER" --server "$ADDR" list

# --- remote mode needs no master key and makes no store --------------------------------------
mkdir "$WORK/cwd"
(
	cd "$WORK/cwd" || exit 1
	export COFFER_TOKEN=$OPS_TOKEN COFFER_KEY_FILE="$WORK/cwd/no.key" COFFER_MASTER_KEY=not-a-key
	export COFFER_PASSPHRASE=x COFFER_STORE="$WORK/cwd/nostore"
	"$COFFER" --server "$ADDR" put nokey.test v >/dev/null 2>"$WORK/nokey.err" &&
		"$COFFER" --server "$ADDR" access nokey.test >/dev/null 2>>"$WORK/nokey.err" &&
		"$COFFER" --server "$ADDR" list >/dev/null 2>>"$WORK/nokey.err"
) && pass "remote mode works with a bogus key and store in the environment" || fail "remote mode with a bogus key: $(cat "$WORK/nokey.err")"
expect_eq "" "$(ls -A "$WORK/cwd")" "... and creates no store or key file"
expect_rc 2 "--key-file with --server is refused" C --server "$ADDR" --key-file "$WORK/k" list
expect_err_has "which holds the master key" "... saying why"
expect_rc 2 "--max-value with --server is refused" C --server "$ADDR" --max-value 10 list
expect_rc 2 "--server and --store together are refused" C --server "$ADDR" --store "$WORK/local" list

# --- local-only commands --------------------------------------------------------------------
for cmd in init rotate-key rekey serve; do
	expect_rc 2 "--server with $cmd is a usage error" C --server "$ADDR" "$cmd"
	expect_err_has "works on a local store only" "... $cmd says it is local only"
done
expect_rc 2 "COFFER_SERVER with init is refused" env COFFER_SERVER="$ADDR" "$COFFER" init
expect_err_has "COFFER_SERVER is set" "... naming COFFER_SERVER"
expect_rc 2 "... also as JSON" env COFFER_SERVER="$ADDR" "$COFFER" init --json
python3 -m json.tool "$WORK/err" >/dev/null && pass "... which parses" || fail "init --json error: $(cat "$WORK/err")"
expect_rc 0 "--store on the line overrides COFFER_SERVER" env COFFER_SERVER="$ADDR" "$COFFER" --store "$WORK/local" list
expect_rc 2 "--token without a server is a usage error" C --store "$WORK/local" --token x list
expect_err_has "remote mode" "... saying it is for remote mode"
expect_rc 2 "--tls without a server is a usage error" C --store "$WORK/local" --tls list
expect_rc 2 "serve --token (for --tokens) is a usage error" C serve --store "$WORK/local" --token x
expect_err_has "did you mean '--tokens'" "... suggesting --tokens"
expect_rc 2 "--server '' is a usage error" C --server "" list
expect_rc 2 "a malformed address" C --server "no-port" list

# --- the token stays out of argv and of a run child's environment ----------------------------
COFFER_TOKEN=$OPS_TOKEN COFFER_MASTER_KEY=x COFFER_PASSPHRASE=y "$COFFER" --server "$ADDR" run --env PW=db.password -- env >"$WORK/child.env" 2>"$WORK/err"
grep -q '^PW=five$' "$WORK/child.env" && pass "run's child gets the secret" || fail "run child env: $(cat "$WORK/err")"
grep -q "COFFER_TOKEN\|$OPS_TOKEN" "$WORK/child.env" && fail "run's child sees the token" || pass "run's child does not see the token"
grep -q "COFFER_MASTER_KEY\|COFFER_PASSPHRASE" "$WORK/child.env" && fail "run's child sees a key variable" || pass "... nor a key variable"
# A put waiting for its value on a FIFO: its command line, once it is coffer's, shows no token.
mkfifo "$WORK/fifo"
exec 3<>"$WORK/fifo"
"$COFFER" --server "$ADDR" --token "$OPS_TOKEN" put argv.test <"$WORK/fifo" >"$WORK/argv.out" 2>"$WORK/argv.err" 3>&- &
PUT_PID=$!
hidden=0
for _ in $(seq 600); do # until the process is coffer and its argv shows no token (or it exits)
	if [ "$(cat "/proc/$PUT_PID/comm" 2>/dev/null)" = coffer ] &&
		tr '\0' ' ' <"/proc/$PUT_PID/cmdline" | grep -q 'put argv.test' &&
		! tr '\0' ' ' <"/proc/$PUT_PID/cmdline" | grep -qF "$OPS_TOKEN"; then
		hidden=1
		break
	fi
	kill -0 "$PUT_PID" 2>/dev/null || break
	sleep 0.05
done
printf %s argv-value >&3
exec 3>&-
wait "$PUT_PID"
expect_eq "1 0" "$hidden $?" "--token is wiped from /proc/PID/cmdline while coffer runs (and the put works)"

# --- TLS: a development server (no policy, no tokens) with a certificate -------------------------
# The local caller is its service 'default': put and access work because the CLI, without a
# token, declares what it uses (as an SDK does), and the admin commands because a development
# server lets 'default' use the admin service.
if openssl version >/dev/null 2>&1; then
	for n in good other; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$WORK/$n.key" -out "$WORK/$n.pem" -days 1 -subj /CN=localhost \
			-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1
		chmod 600 "$WORK/$n.key"
	done
	"$COFFER" serve --store "$WORK/tls-srv" --listen 127.0.0.1:0 --tls-cert "$WORK/good.pem" \
		--tls-key "$WORK/good.key" --quiet >"$WORK/tls.log" 2>&1 &
	TLS_PID=$!
	TADDR=
	for _ in $(seq 600); do
		TADDR=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$WORK/tls.log" | head -1 | cut -d' ' -f3)
		[ -n "$TADDR" ] && break
		kill -0 "$TLS_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [ -n "$TADDR" ]; then
		expect_rc 0 "TLS: put with --ca-file (development server, no token)" C --server "$TADDR" --ca-file "$WORK/good.pem" put tls.secret over-tls
		expect_eq 1 "$(cat "$WORK/out")" "... version 1"
		expect_rc 0 "TLS: access with --tls and COFFER_CA_FILE" env COFFER_CA_FILE="$WORK/good.pem" "$COFFER" --server "$TADDR" --tls access tls.secret
		expect_eq over-tls "$(cat "$WORK/out")" "... reads it back"
		expect_rc 0 "TLS: list with COFFER_TLS=1 and COFFER_CA_FILE, by host name" env COFFER_TLS=1 COFFER_CA_FILE="$WORK/good.pem" "$COFFER" --server "localhost:${TADDR##*:}" list --json
		expect_eq '[{"name":"tls.secret","versions":1}]' "$(cat "$WORK/out")" "... the admin service for the development server's operator"
		expect_rc 6 "TLS: another CA is refused (exit 6)" C --server "$TADDR" --ca-file "$WORK/other.pem" list
		expect_err_has "certificate verify failed" "... saying the certificate did not verify"
		expect_rc 6 "TLS: plaintext against a TLS server (exit 6)" C --server "$TADDR" list
		expect_rc 2 "COFFER_TLS=maybe is refused" env COFFER_TLS=maybe "$COFFER" --server "$TADDR" list
		expect_rc 6 "TLS against the plaintext server (exit 6)" env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "$ADDR" --tls --ca-file "$WORK/good.pem" list
	else
		fail "TLS server started: $(cat "$WORK/tls.log")"
	fi
	kill -TERM "$TLS_PID" 2>/dev/null
	wait "$TLS_PID" 2>/dev/null
	TLS_PID=
else
	echo "skip TLS: no openssl"
fi

# --- the server down -------------------------------------------------------------------------
stop_server
expect_rc 6 "server down: connection refused is exit 6" env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "$ADDR" list
expect_err_has "Connection refused" "... says the connection was refused"
expect_err_has "is coffer serve running there?" "... and what to check"
expect_rc 6 "server down, put: exit 6" env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "$ADDR" put x v
expect_rc 6 "server down, --json" env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "$ADDR" access x --json
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["code"]=="EUNAVAIL" and e["exit"]==6, e' "$WORK/err" \
	&& pass "... as a JSON error EUNAVAIL" || fail "server down JSON: $(cat "$WORK/err")"
expect_rc 6 "no socket at unix:PATH: exit 6" env COFFER_TOKEN="$OPS_TOKEN" "$COFFER" --server "unix:$WORK/srv.sock" list

# --- what the server stored is in its store, not in the local one ----------------------------
expect_rc 0 "the server's store holds the remote puts" C --store "$WORK/srv" access argv.test
expect_eq argv-value "$(cat "$WORK/out")" "... the value put while --token was hidden"
expect_rc 3 "the local store does not" C --store "$WORK/local" access argv.test

finish
