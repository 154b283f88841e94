#!/usr/bin/env bash
# `coffer run` hands the child the variables it asked for and the caller's environment, but
# never coffer's own key material (COFFER_MASTER_KEY, COFFER_PASSPHRASE, COFFER_KEY_FILE).
COFFER=${1:?usage: test_run_env.sh path/to/coffer}
. "$(dirname "$0")/lib.sh"

KEY=AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=
PASS_PHRASE="correct horse battery staple for run"
KEYFILE="$WORK/run.key"

# One store per way of giving the key, each holding the secret 'name'.
COFFER_MASTER_KEY=$KEY "$COFFER" --store "$WORK/by-key" put name from-key >/dev/null 2>&1
COFFER_PASSPHRASE=$PASS_PHRASE "$COFFER" --store "$WORK/by-pass" put name from-pass >/dev/null 2>&1
COFFER_KEY_FILE=$KEYFILE "$COFFER" --store "$WORK/by-file" put name from-file >/dev/null 2>&1

# check_child DESC WANT ENV...: run `coffer run --env X=name -- env` with ENV set; X must be
# WANT and no COFFER_MASTER_KEY/COFFER_PASSPHRASE/COFFER_KEY_FILE (nor a key's value) may show.
check_child() {
	local desc=$1 want=$2
	shift 2
	env "$@" "$COFFER" run --env X=name -- env >"$WORK/child.env" 2>"$WORK/err"
	local rc=$?
	expect_eq 0 "$rc" "$desc: run succeeds"
	expect_eq "$want" "$(sed -n 's/^X=//p' "$WORK/child.env")" "$desc: the child gets X"
	local leaked
	leaked=$(grep -E '^COFFER_(MASTER_KEY|PASSPHRASE|KEY_FILE)=' "$WORK/child.env" | cut -d= -f1 | tr '\n' ' ')
	expect_eq "" "$leaked" "$desc: no key variable reaches the child"
	if grep -qF -e "$KEY" -e "$PASS_PHRASE" -e "$KEYFILE" "$WORK/child.env"; then
		fail "$desc: a key, passphrase or key file path is in the child's environment"
	else
		pass "$desc: no key material in the child's environment"
	fi
	grep -q '^KEEP_ME=kept$' "$WORK/child.env" && pass "$desc: the caller's environment is kept" ||
		fail "$desc: the caller's environment is kept"
}

check_child "COFFER_MASTER_KEY" from-key KEEP_ME=kept COFFER_STORE="$WORK/by-key" COFFER_MASTER_KEY=$KEY
check_child "COFFER_PASSPHRASE" from-pass KEEP_ME=kept COFFER_STORE="$WORK/by-pass" COFFER_PASSPHRASE="$PASS_PHRASE"
check_child "COFFER_KEY_FILE" from-file KEEP_ME=kept COFFER_STORE="$WORK/by-file" COFFER_KEY_FILE="$KEYFILE"
# All three at once (COFFER_MASTER_KEY wins the store's key; none may pass).
check_child "all three" from-key KEEP_ME=kept COFFER_STORE="$WORK/by-key" COFFER_MASTER_KEY=$KEY \
	COFFER_PASSPHRASE="$PASS_PHRASE" COFFER_KEY_FILE="$KEYFILE"

# A variable the user asks for by one of those names is theirs: it holds the secret, no key.
env COFFER_STORE="$WORK/by-key" COFFER_MASTER_KEY=$KEY "$COFFER" run --env COFFER_PASSPHRASE=name -- env >"$WORK/child.env" 2>/dev/null
expect_eq from-key "$(sed -n 's/^COFFER_PASSPHRASE=//p' "$WORK/child.env")" "an asked-for variable of that name holds the secret"
expect_eq "" "$(sed -n 's/^COFFER_MASTER_KEY=//p' "$WORK/child.env")" "and the master key still does not pass"
finish
