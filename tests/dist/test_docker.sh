#!/usr/bin/env bash
# The Dockerfile: its health check (dist/healthcheck.sh) against a real `coffer serve` on a Unix
# socket; its shape (multi-stage, Debian slim, non-root, the store on a volume, HEALTHCHECK);
# then, where a Docker daemon answers, the image is built and run until Docker calls it healthy;
# else hadolint lints it if installed; else that part is skipped with the reason printed.
# usage: test_docker.sh COFFER_BIN SOURCE_DIR
set -u
bin=${1:?usage: test_docker.sh COFFER_BIN SOURCE_DIR}
src=${2:?}
df=$src/Dockerfile
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

t=$(mktemp -d /tmp/coffer-docker.XXXXXX)
srv=
cleanup() {
	[ -n "$srv" ] && kill "$srv" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT

# The health check against a live server, then against none.
if command -v curl >/dev/null; then
	sock=$t/coffer.sock
	env -u COFFER_MASTER_KEY -u COFFER_PASSPHRASE -u COFFER_KEY_FILE -u COFFER_STORE \
		"$bin" --store "$t/store" serve --listen "unix:$sock" >"$t/serve.out" 2>"$t/serve.err" &
	srv=$!
	for _ in $(seq 600); do grep -q '^coffer: store ' "$t/serve.out" && break; sleep 0.05; done
	check "healthcheck.sh: a serving server passes" sh "$src/dist/healthcheck.sh" "$sock"
	check "the server logged the Check" grep -q 'coffer: Check principal=- secret=- version=- status=0' "$t/serve.err"
	kill -TERM "$srv"
	wait "$srv"
	srv=
	check "healthcheck.sh: no server fails" bash -c "! sh '$src/dist/healthcheck.sh' '$sock' 2>/dev/null"
else
	echo "skip: curl is not installed: the health check script is not run"
fi

# Its shape.
check "multi-stage (two FROM)" test "$(grep -c '^FROM ' "$df")" -ge 2
check "Debian slim base" bash -c "grep '^FROM ' '$df' | grep -qv 'debian:[a-z]*-slim' && exit 1 || exit 0"
check "runs as a non-root USER" grep -Eq '^USER [1-9][0-9]*(:[0-9]+)?$' "$df"
check "the store on a VOLUME" grep -q '^VOLUME \["/var/lib/coffer"\]' "$df"
check "COFFER_STORE is the volume" grep -q '^ENV COFFER_STORE=/var/lib/coffer' "$df"
check "HEALTHCHECK runs the health check" grep -q 'CMD \["/usr/local/bin/coffer-healthcheck"' "$df"

# Build and run it, or lint it, or say why not.
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
	tag=coffer-test-$$
	if docker build -q -t "$tag" "$src" >"$t/build.log" 2>&1; then
		ok "docker build"
		# The default command wants TLS and tokens from /etc/coffer; the socket alone will do here.
		cid=$(docker run -d "$tag" --listen unix:/run/coffer/coffer.sock)
		state=
		for _ in $(seq 90); do
			state=$(docker inspect -f '{{.State.Health.Status}}' "$cid" 2>/dev/null)
			[ "$state" = healthy ] && break
			sleep 1
		done
		check "the container turns healthy (was: $state)" test "$state" = healthy
		check "it runs as uid 10001" test "$(docker exec "$cid" id -u)" = 10001
		docker rm -f "$cid" >/dev/null
		docker rmi -f "$tag" >/dev/null
	else
		tail -20 "$t/build.log"
		bad "docker build"
	fi
elif command -v hadolint >/dev/null; then
	echo "skip: no Docker daemon reachable here: the image is not built; hadolint lints it instead"
	check "hadolint" hadolint "$df"
else
	echo "skip: no Docker daemon reachable here and hadolint is not installed: the image is neither built nor linted"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
