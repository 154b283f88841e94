# Shared helpers for the CLI tests: a private store per test, assertions, a closing tally.
# Usage: COFFER=path/to/coffer; . lib.sh
set -u
PASS=0
FAIL=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-cli-XXXXXX")
export COFFER_STORE="$WORK/store"
unset COFFER_MASTER_KEY COFFER_PASSPHRASE COFFER_KEY_FILE
# Remote mode is chosen by the environment too: the tests say --server where they mean it.
unset COFFER_SERVER COFFER_TOKEN COFFER_TOKEN_FILE COFFER_TLS COFFER_CA_FILE
trap 'rm -rf "$WORK"' EXIT

pass() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$1"; }
fail() { FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$1"; }

# expect_rc WANT DESC CMD...: run CMD, compare its exit code.
expect_rc() {
	local want=$1 desc=$2
	shift 2
	"$@" >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	if [ "$rc" -eq "$want" ]; then pass "$desc"; else
		fail "$desc (exit $rc, wanted $want): $(head -c 300 "$WORK/err")"; fi
}

# expect_eq WANT GOT DESC
expect_eq() {
	if [ "$1" = "$2" ]; then pass "$3"; else fail "$3 (got '$2', wanted '$1')"; fi
}

# expect_err_has TEXT DESC: the last command's stderr contains TEXT.
expect_err_has() {
	if grep -qF -- "$1" "$WORK/err"; then pass "$2"; else
		fail "$2 (stderr lacks '$1': $(head -c 300 "$WORK/err"))"; fi
}

finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}
