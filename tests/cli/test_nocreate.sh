#!/usr/bin/env bash
# Only init and put create a store. Every other command, pointed at a store that does not exist,
# says "no store at X (create one with coffer init)", exits 3 (not found) and creates nothing:
# no folder, no coffer.db, no coffer.gen, no key file.
COFFER=${1:?usage: test_nocreate.sh path/to/coffer}
. "$(dirname "$0")/lib.sh"
C() { "$COFFER" "$@"; }

# Each read-or-change command, as the words after the global options.
commands=(
	"access x"
	"access x@1"
	"versions x"
	"list"
	"destroy x@1"
	"run --env X=x -- true"
	"rotate-key"
	"rekey"
	"rekey --new-key-file $WORK/keydir/new.key"
)

# tree DIR: what exists at and below DIR ("missing" when nothing).
tree() { if [ -e "$1" ]; then (cd "$1" && find . | sort | tr '\n' ' '); else echo missing; fi; }

# no_store DESC STORE_DIR ARGS...: ARGS must fail as "no store" and leave STORE_DIR as it was.
no_store() {
	local desc=$1 dir=$2
	shift 2
	local before
	before=$(tree "$dir")
	expect_rc 3 "$desc: exit 3" C "$@"
	expect_err_has "no store at" "$desc: says there is no store"
	expect_err_has "coffer init" "$desc: says how to make one"
	expect_eq "$before" "$(tree "$dir")" "$desc: created nothing"
}

for cmd in "${commands[@]}"; do
	# shellcheck disable=SC2086 # the command's words
	no_store "--store typo $cmd" "$WORK/typo" --store "$WORK/typo" $cmd
	mkdir -p -m 700 "$WORK/empty" "$WORK/keydir"
	no_store "empty folder, $cmd" "$WORK/empty" --store "$WORK/empty" $cmd
	# (plain rekey with --key-file is a usage error first: it needs --new-key-file)
	[ "$cmd" = rekey ] ||
		no_store "COFFER_STORE, --key-file, $cmd" "$WORK/keydir" --key-file "$WORK/keydir/k.key" $cmd
	[ -e "$COFFER_STORE" ] && fail "$cmd: the default store was created" || pass "$cmd: no default store"
done

# A folder where init stopped after the schema (no header, no key yet): still no store, and the
# key file and the header are not made behind the user's back.
C --store "$WORK/half" init >/dev/null 2>&1
sqlite3 "$WORK/half/coffer.db" "DELETE FROM keyring; DELETE FROM header;"
rm -f "$WORK/half/master.key" "$WORK/half/coffer.gen"
for cmd in "access x" "list" "rotate-key"; do
	# shellcheck disable=SC2086
	expect_rc 3 "half-made store, $cmd: exit 3" C --store "$WORK/half" $cmd
	expect_err_has "no store at" "half-made store, $cmd: says there is no store"
	[ -e "$WORK/half/master.key" ] && fail "half-made store, $cmd: made a key file" ||
		pass "half-made store, $cmd: no key file"
done

# A folder where creation stopped before the schema (an empty coffer.db): a read command does
# not build the schema either; the database stays empty.
mkdir -m 700 "$WORK/bare" && : >"$WORK/bare/coffer.db" && chmod 600 "$WORK/bare/coffer.db"
for cmd in "access x" "list"; do
	# shellcheck disable=SC2086
	expect_rc 3 "empty coffer.db, $cmd: exit 3" C --store "$WORK/bare" $cmd
	expect_err_has "no store at" "empty coffer.db, $cmd: says there is no store"
	expect_eq 0 "$(stat -c %s "$WORK/bare/coffer.db")" "empty coffer.db, $cmd: still empty"
done

# init and put still create; then the read commands work.
expect_rc 3 "access before anything exists" C access x
expect_rc 0 "put creates the store" C put x one
expect_err_has "created store" "put says it created the store"
expect_eq one "$(C access x)" "access reads it"
expect_rc 0 "init creates a store" C --store "$WORK/made" init
expect_rc 0 "list on the new store" C --store "$WORK/made" list
expect_rc 0 "the half-made store can be finished with init" C --store "$WORK/half" init
expect_err_has "created master key file" "init makes its key"
finish
