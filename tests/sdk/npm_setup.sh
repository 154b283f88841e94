#!/usr/bin/env bash
# Install @nitric/sdk 0.15.0 (the first contract, with secret(...).for(...) as Nitric's
# documentation prints it) into its own folder under the build dir: it cannot share a
# node_modules with the 1.2.2 that tests/server installs. Idempotent; serialized with flock.
set -euo pipefail
dir=${1:?usage: npm_setup.sh DIR}
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if node -e "process.exit(require('$dir/node_modules/@nitric/sdk/package.json').version === '0.15.0' ? 0 : 1)" 2>/dev/null; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "sdk npm_setup: npm is missing (apt-get install nodejs npm)" >&2
  exit 1
fi
cd "$dir"
export npm_config_cache="$dir/.npm" npm_config_update_notifier=false
[ -f package.json ] || echo '{"name":"coffer-sdk-v0-tests","private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error @nitric/sdk@0.15.0
