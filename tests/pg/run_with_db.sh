#!/usr/bin/env bash
# run_with_db.sh DBNAME COMMAND [ARGS...] -- run COMMAND with COFFER_TEST_STORE set to the URL of
# a fresh database DBNAME on the test server (tests/pg/pg_server.sh, state in COFFER_PG_STATE).
set -euo pipefail
db=${1:?database name}
shift
: "${COFFER_PG_STATE:?COFFER_PG_STATE not set (run through ctest)}"
here=$(cd "$(dirname "$0")" && pwd)
COFFER_TEST_STORE=$("$here/pg_server.sh" newdb "$COFFER_PG_STATE" "$db")
export COFFER_TEST_STORE
exec "$@"
