#!/usr/bin/env bash
# Durability: SIGKILL a writer at random moments, many times; afterwards every acknowledged put
# is readable with its exact value and SQLite's integrity check passes.
COFFER=${1:?usage: test_crash.sh path/to/coffer}
ROUNDS=${ROUNDS:-150}
SEED=${SEED:-4242}
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 1; }
echo "# seed $SEED, $ROUNDS rounds"
RANDOM=$SEED
"$COFFER" init 2>/dev/null
: >"$WORK/acks"
# Calibrate: how long one put takes here, so the kill moments cover its whole life.
t0=$(date +%s%N)
for i in 1 2 3 4 5; do "$COFFER" put calibrate x >/dev/null 2>&1; done
per_put_us=$((($(date +%s%N) - t0) / 5000))
span_us=$((per_put_us * 3 / 2))
echo "# one put takes ~${per_put_us} us; kills land in 0..${span_us} us"
killed=0
for r in $(seq 1 "$ROUNDS"); do
	val="round-$r-$RANDOM$RANDOM"
	"$COFFER" put crash "$val" >"$WORK/ver" 2>/dev/null &
	pid=$!
	delay_us=$(( (RANDOM * 32768 + RANDOM) % span_us ))
	sleep "$(printf '0.%06d' "$delay_us")"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	status=$?
	if [ "$status" -eq 137 ]; then
		killed=$((killed + 1))
	elif [ "$status" -eq 0 ] && [ -s "$WORK/ver" ]; then
		echo "$(cat "$WORK/ver") $val" >>"$WORK/acks"
	fi
done
acked=$(wc -l <"$WORK/acks")
echo "# $killed writers killed, $acked puts acknowledged"
[ "$killed" -gt 0 ] && pass "some writers were killed mid-flight" || fail "no writer was killed"
[ "$acked" -gt 0 ] && pass "some puts were acknowledged" || fail "no put was acknowledged"
bad=0
while read -r ver val; do
	[ "$("$COFFER" access "crash@$ver" 2>/dev/null)" = "$val" ] || { bad=$((bad + 1)); echo "lost: $ver"; }
done <"$WORK/acks"
expect_eq 0 "$bad" "every acknowledged put is readable with its exact value"
expect_eq ok "$(sqlite3 "$COFFER_STORE/coffer.db" 'PRAGMA integrity_check')" "PRAGMA integrity_check is ok"
# Versions stay strictly increasing and never reused after the crashes.
before=$("$COFFER" versions crash | tail -1 | cut -d' ' -f1)
after=$("$COFFER" put crash final 2>/dev/null)
[ "${after:-0}" -gt "${before:-0}" ] && pass "the next put gets a fresh, higher id" || fail "next id ($after after $before)"
finish
