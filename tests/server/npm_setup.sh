#!/usr/bin/env bash
# Install the Node packages the server tests drive coffer serve with, into a cache folder
# (usually under the build dir): @nitric/sdk 1.2.2 (the official SDK, used unmodified) and
# @grpc/grpc-js + @grpc/proto-loader (a second, non-Nitric client). Idempotent; serialized with
# flock so that parallel test runs do not install twice.
set -euo pipefail
cache=${1:?usage: npm_setup.sh CACHE_DIR}
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
want() { node -e "process.exit(require('$cache/node_modules/$1/package.json').version === '$2' ? 0 : 1)" 2>/dev/null; }
if want @nitric/sdk 1.2.2 && want @grpc/grpc-js 1.14.7 && want @grpc/proto-loader 0.8.1; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm_setup: npm is missing (apt-get install nodejs npm)" >&2
  exit 1
fi
cd "$cache"
# Everything npm keeps stays in the cache folder: no dependence on HOME or a global cache.
export npm_config_cache="$cache/.npm" npm_config_update_notifier=false
[ -f package.json ] || echo '{"name":"coffer-server-tests","private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error \
  @nitric/sdk@1.2.2 @grpc/grpc-js@1.14.7 @grpc/proto-loader@0.8.1
