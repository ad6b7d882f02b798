#!/usr/bin/env bash
# Runs the python-socketio suite (pytest, tests/python/test_*.py) against the server binary, from
# the venv that venv.sh keeps. Usage: tests/python/run.sh [pytest arguments...]
# Env: SYNCSCRIPT_BIN (default target/debug/syncscript); the PostgreSQL outage test needs
# PostgreSQL's server binaries (/usr/lib/postgresql/<version>/bin).
set -euo pipefail
cd "$(dirname "$0")"
venv=$(./venv.sh)
export PYTHONDONTWRITEBYTECODE=1
rc=0
"$venv/bin/python" -m pytest "$@" || rc=$?
# pytest exits 5 when it collected no test: a suite that ran nothing has not passed.
if [ "$rc" -eq 5 ]; then
  echo "python-socketio suite: no test ran" >&2
fi
exit "$rc"
