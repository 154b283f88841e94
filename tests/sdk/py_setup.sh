#!/usr/bin/env bash
# Install the Python SDK (PyPI nitric 1.2.4: grpclib over the pure-Python h2 stack) into a
# virtualenv under the build dir, never system-wide. Idempotent; serialized with flock.
# Exits 77 (the test is skipped) with the reason when python3 -m venv or PyPI is not there.
set -uo pipefail
venv=${1:?usage: py_setup.sh VENV_DIR}
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('nitric') != '1.2.4')" 2>/dev/null; then
  exit 0
fi
if ! python3 -m venv "$venv"; then
  echo "SKIP: python3 -m venv failed (apt-get install python3-venv)" >&2
  exit 77
fi
export PIP_CACHE_DIR="$(dirname "$venv")/.pip" PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$venv/bin/pip" install -q nitric==1.2.4; then
  echo "SKIP: could not install nitric 1.2.4 from PyPI" >&2
  exit 77
fi
