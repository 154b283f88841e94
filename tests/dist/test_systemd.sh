#!/usr/bin/env bash
# dist/coffer.service: `systemd-analyze verify` accepts it, `systemd-analyze security` rates its
# exposure at most 2.0 ("OK"), and `coffer serve` speaks Type=notify: READY=1 once it serves,
# RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM (a python3 datagram socket stands in for systemd's NOTIFY_SOCKET).
# usage: test_systemd.sh COFFER_BIN UNIT_FILE WITH_SYSTEMD(0|1)
set -u
bin=${1:?usage: test_systemd.sh COFFER_BIN UNIT_FILE WITH_SYSTEMD}
unit=${2:?}
with_systemd=${3:-0}
pass=0 fail=0 skipped=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
skip() { echo "skip: $*"; skipped=$((skipped + 1)); }

t=$(mktemp -d /tmp/coffer-systemd.XXXXXX)
srv=
cleanup() {
	[ -n "$srv" ] && kill "$srv" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT

# The unit as installed names /usr/bin/coffer; verify checks that ExecStart's binary exists, so
# the copy verified here names the binary under test (nothing else differs).
cp "$unit" "$t/coffer.service"
sed -i "s|^ExecStart=/usr/bin/coffer |ExecStart=$bin |" "$t/coffer.service"
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze is not installed: the unit is not verified"
else
	# --man=no: the unit's Documentation= page is installed only with the package.
	if out=$(systemd-analyze verify --man=no "$t/coffer.service" 2>&1) && [ -z "$out" ]; then
		ok "systemd-analyze verify: no complaint"
	elif echo "$out" | grep -qi "failed to connect\|no such file or directory.*bus\|not been booted"; then
		skip "systemd-analyze verify cannot run in this container: $out"
	else
		echo "$out"
		bad "systemd-analyze verify"
	fi
	sec=$(systemd-analyze security --offline=true "$t/coffer.service" 2>&1)
	level=$(echo "$sec" | sed -n 's/.*Overall exposure level for coffer.service: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
	if [ -z "$level" ]; then
		echo "$sec" | tail -5
		skip "systemd-analyze security --offline gave no exposure level here"
	else
		echo "    exposure: $level"
		echo "$sec" | grep '✗' | sed 's/^/    /'
		if awk -v l="${level% *}" 'BEGIN { exit !(l <= 2.0) }'; then
			ok "systemd-analyze security: exposure $level (at most 2.0)"
		else
			bad "systemd-analyze security: exposure $level, more than 2.0"
		fi
	fi
fi
for opt in Type=notify StateDirectory=coffer DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict \
	PrivateTmp=yes MemoryDenyWriteExecute=yes LockPersonality=yes SystemCallFilter=@system-service \
	'ExecReload=/bin/kill -HUP $MAINPID' \
	CapabilityBoundingSet= StateDirectoryMode=0700; do
	if grep -qx "$opt" "$unit"; then ok "unit has $opt"; else bad "unit lacks $opt"; fi
done
grep -q '^RestrictAddressFamilies=' "$unit" && ok "unit has RestrictAddressFamilies=" || bad "unit lacks RestrictAddressFamilies="

# sd_notify: READY=1 after start-up, STOPPING=1 at SIGTERM.
if [ "$with_systemd" != 1 ]; then
	skip "built without libsystemd: coffer serve does not sd_notify"
elif ! command -v python3 >/dev/null; then
	skip "python3 is not installed: no stand-in for systemd's notify socket"
else
	sock=$t/notify.sock
	python3 - "$sock" >"$t/notify.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
try:
    while True:
        msg = s.recv(4096).decode()
        print(msg.replace("\n", " | "), flush=True)
        if "STOPPING=1" in msg:
            break
except socket.timeout:
    pass
PY
	py=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	mkdir -m 700 "$t/state"
	env -u COFFER_STORE -u COFFER_MASTER_KEY -u COFFER_PASSPHRASE -u COFFER_KEY_FILE \
		NOTIFY_SOCKET="$sock" STATE_DIRECTORY="$t/state" "$bin" serve --listen 127.0.0.1:0 \
		>"$t/serve.out" 2>"$t/serve.err" &
	srv=$!
	for _ in $(seq 600); do grep -q '^coffer: store ' "$t/serve.out" && break; sleep 0.05; done
	for _ in $(seq 100); do grep -q 'READY=1' "$t/notify.log" && break; sleep 0.05; done
	if grep -q 'READY=1' "$t/notify.log"; then ok "READY=1 once serving"; else bad "no READY=1"; fi
	grep -q 'STOPPING=1' "$t/notify.log" && bad "STOPPING=1 before any signal"
	# SIGHUP (the unit's ExecReload): RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
	kill -HUP "$srv"
	for _ in $(seq 100); do grep -q 'RELOADING=1.*' "$t/notify.log" && [ "$(grep -c 'READY=1' "$t/notify.log")" -ge 2 ] && break; sleep 0.05; done
	if grep -q '^RELOADING=1 | MONOTONIC_USEC=[0-9]' "$t/notify.log" && [ "$(grep -c 'READY=1' "$t/notify.log")" -ge 2 ] &&
		[ "$(grep -n 'RELOADING=1' "$t/notify.log" | head -1 | cut -d: -f1)" -lt "$(grep -n 'READY=1' "$t/notify.log" | tail -1 | cut -d: -f1)" ]; then
		ok "SIGHUP: RELOADING=1 then READY=1"
	else
		bad "SIGHUP: no RELOADING=1 then READY=1"
	fi
	kill -TERM "$srv"
	wait "$srv"
	rc=$?
	srv=
	wait "$py"
	sed 's/^/    notify: /' "$t/notify.log"
	if grep -q 'STOPPING=1' "$t/notify.log"; then ok "STOPPING=1 at SIGTERM"; else bad "no STOPPING=1"; fi
	[ "$rc" -eq 0 ] && ok "clean exit" || bad "exit code $rc"
	grep -q "^coffer: store $t/state," "$t/serve.out" && ok "the store is \$STATE_DIRECTORY" || bad "store: $(cat "$t/serve.out")"
fi

echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ] || exit 1
[ "$pass" -gt 0 ] || exit 77
