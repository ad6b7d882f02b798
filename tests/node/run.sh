#!/usr/bin/env bash
# Runs the Node suites (socket.io-client, Chromium, OpenAPI, three nodes behind nginx) against the server binary.
# Usage: tests/node/run.sh [test files...]   (default: every *.test.mjs here)
# Env: SYNCSCRIPT_BIN (default target/debug/syncscript), CHROMIUM_PATH (default /usr/bin/chromium),
# CI_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) and NGINX_BIN (default
# /usr/sbin/nginx) for multinode.test.mjs.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# openapi.test.mjs runs openapi-spec-validator (PyPI) on the served document; it lives in a
# venv here so that nothing is installed into the system's Python.
VALIDATOR_VERSION=0.9.0
if ! .venv/bin/openapi-spec-validator --version 2>/dev/null | grep -q "$VALIDATOR_VERSION"; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "openapi-spec-validator==$VALIDATOR_VERSION"
fi

if [ "$#" -eq 0 ]; then
  set -- socketio.test.mjs delivery.test.mjs presence.test.mjs multinode.test.mjs browser.test.mjs openapi.test.mjs docs.test.mjs
fi

exec node --test --test-concurrency=1 "$@"
