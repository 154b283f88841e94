#!/usr/bin/env bash
# Every command of the table, walked: --help, a mistyped name, a mistyped option, --opt=value,
# --json (stdout parses on success, stderr parses on failure), and every exit code checked
# against the table `coffer help --json` publishes. Then the shell completion, and the README's
# command table against `coffer help`.
COFFER=${1:?usage: test_table.sh path/to/coffer [README.md]}
README=${2:-$(dirname "$0")/../../README.md}
. "$(dirname "$0")/lib.sh"
C() { "$COFFER" "$@"; }
unset COFFER_FORMAT

is_json() { python3 -m json.tool "$1" >/dev/null 2>&1; }

C help --json >"$WORK/help.json" && is_json "$WORK/help.json" && pass "help --json parses" || fail "help --json"
cmds=$(python3 -c 'import json,sys; print(" ".join(c["name"] for c in json.load(open(sys.argv[1]))["commands"]))' "$WORK/help.json")
[ -n "$cmds" ] && pass "the table lists commands: $cmds" || fail "no commands in help --json"

# The exit code the table gives an error name ("usage": 2).
table_exit() {
	python3 - "$WORK/help.json" "$1" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["exit_codes"]
name = sys.argv[2]
if name == "usage":
    print(2)
else:
    print(next((c["code"] for c in t if name in c["errors"]), "none"))
EOF
}

# expect_json_fail WANT DESC CMD...: fails with exit WANT, stdout empty, stderr one JSON error
# whose "exit" is the exit code and whose code the table maps to that exit code.
expect_json_fail() {
	local want=$1 desc=$2
	shift 2
	"$@" >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	if [ "$rc" -ne "$want" ]; then fail "$desc (exit $rc, wanted $want): $(head -c 300 "$WORK/err")"; return; fi
	if [ -s "$WORK/out" ]; then fail "$desc: stdout not empty on failure: $(head -c 100 "$WORK/out")"; return; fi
	if ! is_json "$WORK/err"; then fail "$desc: stderr is not JSON: $(head -c 300 "$WORK/err")"; return; fi
	local code exit
	code=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["code"])' "$WORK/err")
	exit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["exit"])' "$WORK/err")
	[ "$exit" = "$rc" ] && [ "$(table_exit "$code")" = "$rc" ] && pass "$desc ($code, exit $rc, as in the table)" ||
		fail "$desc: error $code exit $exit, process exit $rc, table says $(table_exit "$code")"
}

# expect_json_ok DESC CMD...: exit 0, stdout one JSON document.
expect_json_ok() {
	local desc=$1
	shift
	"$@" >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	[ "$rc" -eq 0 ] && is_json "$WORK/out" && pass "$desc" || fail "$desc (exit $rc): $(head -c 200 "$WORK/out") $(head -c 200 "$WORK/err")"
}

# --- every command: --help, typo of its name, typo of an option --------------------------------
for cmd in $cmds; do
	expect_rc 0 "$cmd --help exits 0" C "$cmd" --help
	head -1 "$WORK/out" | grep -q "^usage: coffer $cmd" && pass "$cmd --help is $cmd's own help" || fail "$cmd --help: $(head -1 "$WORK/out")"
	C help "$cmd" >"$WORK/h2" 2>&1
	cmp -s "$WORK/out" "$WORK/h2" && pass "coffer help $cmd is the same text" || fail "coffer help $cmd differs"
	# A typo: two neighbouring letters swapped.
	typo="${cmd:0:1}${cmd:2:1}${cmd:1:1}${cmd:3}"
	[ "$typo" = "$cmd" ] && typo=${cmd%?} # (access: swapping c and c changes nothing)
	expect_rc 2 "typo '$typo' is a usage error" C "$typo"
	expect_err_has "did you mean '$cmd'" "typo '$typo' suggests $cmd"
	expect_json_fail 2 "typo '$typo' with --json" C --json "$typo"
	# Each of its own options, misspelt (last letter dropped; the first, when that is another
	# option: serve's --tokens and the global --token).
	all_opts=" $(python3 -c 'import json,sys; h=json.load(open(sys.argv[1])); print(" ".join(o["name"] for c in h["commands"] for o in c["options"]), " ".join(o["name"] for o in h["global_options"]))' "$WORK/help.json") "
	for opt in $(python3 -c 'import json,sys; [print(o["name"]) for c in json.load(open(sys.argv[1]))["commands"] if c["name"]==sys.argv[2] for o in c["options"]]' "$WORK/help.json" "$cmd"); do
		bad=${opt%?}
		case "$all_opts" in *" $bad "*) bad=${opt:1} ;; esac
		expect_rc 2 "$cmd --$bad is a usage error" C "$cmd" "--$bad"
		expect_err_has "did you mean '--$opt'" "$cmd --$bad suggests --$opt"
	done
done
expect_rc 2 "a global option misspelt" C list --stroe x
expect_err_has "did you mean '--store'" "--stroe suggests --store"
expect_rc 2 "an option of another command is refused" C list --file x
expect_err_has "not an option of 'coffer list'" "and says whose it is"
expect_rc 0 "-v prints the version" C -v
expect_rc 0 "help with no command" C help
expect_rc 2 "help of an unknown command" C help acces
expect_err_has "did you mean 'access'" "help acces suggests access"
expect_rc 2 "no command" C
expect_json_fail 2 "no command, --json" C --json

# --- --opt=value, global options anywhere, --json on every command that prints ----------------
S="$WORK/s"
printf 'v1' >"$WORK/v1"
expect_json_ok "init --store=DIR --json" C init --store="$S" --json
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["created_store"] and j["created_key_file"], j' "$WORK/out" && pass "init --json says what it created" || fail "init --json content"
expect_json_ok "put --file=F, global option after the command" C put k --file="$WORK/v1" --json --store "$S"
expect_eq '{"name": "k", "version": "1"}' "$(python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' <"$WORK/out")" "put --json gives name and version"
expect_json_ok "--json before the command" C --json -s "$S" put k v2
expect_json_ok "access --json" C --store="$S" access k --json
python3 -c 'import json,sys,base64; j=json.load(open(sys.argv[1])); assert j=={"name":"k","version":"2","value_b64":base64.b64encode(b"v2").decode(),"value":"v2"}, j' "$WORK/out" &&
	pass "access --json: name, the version latest resolved to, value_b64 and value" || fail "access --json content: $(cat "$WORK/out")"
printf 'a\0\377' | C -s "$S" put bin >/dev/null 2>&1
expect_json_ok "access --json of bytes that are not UTF-8" C -s "$S" access bin --json
python3 -c 'import json,sys,base64; j=json.load(open(sys.argv[1])); assert "value" not in j and base64.b64decode(j["value_b64"])==b"a\0\xff", j' "$WORK/out" &&
	pass "no \"value\" for bytes that are not UTF-8; value_b64 exact" || fail "binary access --json: $(cat "$WORK/out")"
expect_json_ok "versions --json" C -s "$S" versions k --json
expect_json_ok "list --json" C -s "$S" list --json
expect_json_ok "COFFER_FORMAT=json" env COFFER_FORMAT=json "$COFFER" -s "$S" list
expect_json_ok "destroy --json" C -s "$S" destroy k@1 --json
expect_json_ok "rotate-key --json" C -s "$S" rotate-key --json
expect_json_ok "rekey --new-key-file=F --json" C -s "$S" rekey --new-key-file="$WORK/k2" --json
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["in_place"] is False and len(j["next"]) >= 2, j' "$WORK/out" && pass "rekey --json lists the next steps" || fail "rekey --json content"
expect_json_ok "--key-file=F after a rekey" C -s "$S" --key-file="$WORK/k2" list --json
expect_json_ok "help put --json" C help put --json
expect_rc 0 "run --env=VAR=NAME" C -s "$S" -k "$WORK/k2" run --env=X=k -- sh -c 'test "$X" = v2'
expect_rc 0 "--max-value=N" C -s "$S" -k "$WORK/k2" --max-value=70000 put big --file="$WORK/v1"

expect_rc 0 "run with global options after it (--store X --env ...)" C run --store "$S" --key-file "$WORK/k2" --env X=k -- true
expect_rc 0 "'--' ends the options" C -s "$S" -k "$WORK/k2" access -- k
expect_rc 0 "a short option with its value attached" C "-s$S" "-k$WORK/k2" list
expect_rc 0 "run: an option after CMD is CMD's" C -s "$S" -k "$WORK/k2" run --env X=k sh -c 'test "$0" = --json' --json
expect_rc 2 "a flag given a value is refused" C list --json=yes
expect_err_has "takes no value" "and says so"
expect_rc 2 "an option missing its value" C list --store
expect_err_has "needs a value" "and says so"

# Failures: nothing on stdout, a JSON error on stderr, the exit code of the table.
expect_json_fail 3 "versions of an unknown secret" C -s "$S" -k "$WORK/k2" versions nosuch --json
expect_json_fail 3 "access of an unknown version" C -s "$S" -k "$WORK/k2" access k@9 --json
expect_json_fail 2 "access of a malformed version" C -s "$S" -k "$WORK/k2" access k@1x --json
expect_json_fail 2 "put of a bad name" C -s "$S" -k "$WORK/k2" put 'a/b' v --json
expect_json_fail 3 "destroy of a destroyed version" C -s "$S" -k "$WORK/k2" destroy k@1 --json
expect_json_fail 3 "list of no store" C -s "$WORK/none" list --json
expect_json_fail 5 "wrong master key (the old one after a rekey)" C -s "$S" list --json
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert "--key-file" in j["error"]["hint"], j' "$WORK/err" && pass "the wrong-key error carries the rekey hint" || fail "no hint: $(cat "$WORK/err")"
expect_json_fail 2 "rekey in place with the key from the environment" env COFFER_MASTER_KEY="$(cat "$WORK/k2")" "$COFFER" -s "$S" rekey --json
expect_json_fail 2 "run without --env" C -s "$S" run --json -- true
expect_json_fail 3 "run of an unknown secret" C -s "$S" -k "$WORK/k2" run --json --env X=nosuch -- true
expect_json_fail 127 "run of a missing command" C -s "$S" -k "$WORK/k2" run --json --env X=k -- /nonexistent/cmd
expect_json_fail 126 "run of a command that cannot be executed" C -s "$S" -k "$WORK/k2" run --json --env X=k -- "$WORK"
expect_rc 9 "run passes CMD's own exit code through" C -s "$S" -k "$WORK/k2" run --env X=k -- sh -c 'exit 9'
expect_json_fail 2 "serve has no JSON output" C serve --json
expect_json_fail 2 "completion of an unknown shell" C completion fish --json
expect_json_fail 1 "put --file of a missing file" C -s "$S" -k "$WORK/k2" put k --file "$WORK/missing" --json
mkdir -m 755 "$WORK/open"
expect_json_fail 4 "a store folder open to others" C -s "$WORK/open" init --json
# Tables print nothing before an error.
expect_rc 3 "versions (table) of an unknown secret" C -s "$S" -k "$WORK/k2" versions nosuch
[ ! -s "$WORK/out" ] && pass "no table header before the error" || fail "table header printed: $(cat "$WORK/out")"

# serve: --opt=value reaches the server (it listens where --listen= says).
"$COFFER" -s "$WORK/srv" serve --listen=127.0.0.1:0 --threads=1 --quiet >"$WORK/serve.out" 2>"$WORK/serve.err" &
spid=$!
for _ in $(seq 100); do grep -q '^coffer: store' "$WORK/serve.out" && break; sleep 0.1; done
grep -q 'listening on 127.0.0.1:[0-9]' "$WORK/serve.out" && grep -q ', 1 threads' "$WORK/serve.out" &&
	pass "serve --listen=ADDR --threads=1" || fail "serve did not start: $(cat "$WORK/serve.out" "$WORK/serve.err")"
kill "$spid" 2>/dev/null
wait "$spid"
expect_eq 0 "$?" "serve drains and exits 0 on SIGTERM"
expect_rc 2 "serve --threads=0 is out of range" C serve --threads=0

# --- put: trailing newline warning, --trim, --file - ---------------------------------------------
echo hunter2 | C -s "$S" -k "$WORK/k2" put pw >/dev/null 2>"$WORK/err"
expect_err_has "ends with a newline" "a piped value ending with a newline gets a warning"
expect_eq "68756e746572320a" "$(C -s "$S" -k "$WORK/k2" access pw | od -An -tx1 | tr -d ' \n')" "and is stored as given"
echo hunter2 | C -s "$S" -k "$WORK/k2" put pw --trim >/dev/null 2>"$WORK/err"
grep -q "newline" "$WORK/err" && fail "--trim still warns" || pass "--trim: no warning"
expect_eq "hunter2" "$(C -s "$S" -k "$WORK/k2" access pw)" "--trim drops the newline"
printf 'x\r\n' | C -s "$S" -k "$WORK/k2" put pw --trim --file - >/dev/null 2>&1
expect_eq "x" "$(C -s "$S" -k "$WORK/k2" access pw)" "--file - reads stdin; --trim drops \\r\\n"
printf 'no-newline' | C -s "$S" -k "$WORK/k2" put pw >/dev/null 2>"$WORK/err"
grep -q "newline" "$WORK/err" && fail "a value without a newline warns" || pass "no warning without a newline"
echo hunter2 | C -s "$S" -k "$WORK/k2" put pw --json >"$WORK/out" 2>"$WORK/err"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert any("newline" in m for m in j["messages"]), j' "$WORK/out" && [ ! -s "$WORK/err" ] &&
	pass "with --json the warning is in the result's messages, stderr empty" || fail "json warning: $(cat "$WORK/out" "$WORK/err")"

# --- shell completion ------------------------------------------------------------------------
C completion bash >"$WORK/coffer.bash"
bash -n "$WORK/coffer.bash" && pass "bash -n on the bash completion" || fail "bash completion does not parse"
C completion zsh >"$WORK/_coffer"
if command -v zsh >/dev/null; then
	zsh -n "$WORK/_coffer" && pass "zsh -n on the zsh completion" || fail "zsh completion does not parse"
else
	grep -q '^#compdef coffer' "$WORK/_coffer" && pass "zsh completion generated (no zsh here to parse it)" || fail "zsh completion"
fi
complete_words() { # complete_words WORD...: what <TAB> after these words offers
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _coffer; echo "${COMPREPLY[*]}"' _ "$WORK/coffer.bash" "$@"
}
want_de=$(for c in $cmds; do case $c in de*) printf '%s ' "$c" ;; esac; done | sed 's/ $//')
expect_eq "$want_de" "$(complete_words coffer de)" "coffer de<TAB> completes to the commands starting with de"
expect_eq "$want_de" "$(complete_words coffer --store /x de)" "... also after a global option and its value"
expect_eq "--trim" "$(complete_words coffer put --tr)" "a command's own option completes"
expect_eq "access" "$(complete_words coffer help acc)" "help completes command names"
expect_eq "bash" "$(complete_words coffer completion ba)" "completion completes shells"

# --- README's command table against coffer help ------------------------------------------------
readme_cmds=$(grep -oE '^\| `coffer [a-z-]+' "$README" | sed 's/^| `coffer //' | sort -u | tr '\n' ' ')
help_cmds=$(C help | sed -n '/^commands:/,/^$/p' | grep -oE '^  [a-z-]+' | tr -d ' ' | sort -u | tr '\n' ' ')
expect_eq "$help_cmds" "$readme_cmds" "README's command table names the commands coffer help lists"
# ... and the man page coffer(1) (its COMMANDS section, one *name* per entry)
MAN=$(dirname "$README")/docs/man/coffer.1.scd
man_cmds=$(awk '/^# COMMANDS/,/^# OPTIONS/' "$MAN" | grep -oE '^\*[a-z-]+\*' | tr -d '*' | sort -u | tr '\n' ' ')
expect_eq "$help_cmds" "$man_cmds" "coffer(1)'s COMMANDS section names the commands coffer help lists"
python3 - "$README" "$WORK/help.json" <<'EOF' && pass "README's exit-code table matches coffer help --json" || fail "README's exit-code table differs from coffer help --json"
import json, re, sys
readme = {}
for line in open(sys.argv[1]):
    m = re.match(r"^\| (\d+) \|[^|]*\|([^|]*)\|", line)
    if m:
        readme[int(m.group(1))] = sorted(re.findall(r"`([A-Za-z_]+)`", m.group(2)))
table = {c["code"]: sorted(c["errors"]) for c in json.load(open(sys.argv[2]))["exit_codes"]}
if readme != table:
    print("README:", readme, "\nhelp:  ", table)
    sys.exit(1)
EOF

finish
