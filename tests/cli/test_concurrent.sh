#!/usr/bin/env bash
# Many `coffer put` processes against one store at once: every acknowledged version present,
# ids unique and gapless, each holding the value its process wrote.
COFFER=${1:?usage: test_concurrent.sh path/to/coffer}
PROCS=${PROCS:-16}
PUTS=${PUTS:-8}
. "$(dirname "$0")/lib.sh"
"$COFFER" init 2>/dev/null

writer() {
	local p=$1 i v
	for i in $(seq 1 "$PUTS"); do
		if v=$("$COFFER" put shared "proc$p-put$i" 2>>"$WORK/errors"); then
			echo "$v proc$p-put$i"
		else
			echo "FAILED proc$p-put$i"
		fi
	done >"$WORK/acks.$p"
}
for p in $(seq 1 "$PROCS"); do writer "$p" & done
wait
cat "$WORK"/acks.* >"$WORK/acks"
total=$((PROCS * PUTS))
expect_eq 0 "$(grep -c FAILED "$WORK/acks")" "every put was acknowledged"
expect_eq "$total" "$(wc -l <"$WORK/acks")" "$total acknowledgements"
expect_eq "$(seq 1 $total | tr '\n' ' ')" "$(cut -d' ' -f1 "$WORK/acks" | sort -n | tr '\n' ' ')" "ids are unique and gapless 1..$total"
bad=0
while read -r ver val; do
	got=$("$COFFER" access "shared@$ver") || bad=$((bad + 1))
	[ "$got" = "$val" ] || bad=$((bad + 1))
done <"$WORK/acks"
expect_eq 0 "$bad" "every version holds the value its writer put"
expect_eq "$total" "$("$COFFER" versions shared --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" "versions lists them all"
expect_eq "$total" "$("$COFFER" access shared@latest >/dev/null && "$COFFER" versions shared | tail -1 | cut -d' ' -f1)" "latest is the highest id"
finish
