#!/usr/bin/env bash
# Runs the Node suites (the client library, socket.io-client, Chromium, OpenAPI, Schemathesis, three nodes behind nginx) against the server binary.
# Usage: tests/node/run.sh [test files...]   (default: every *.test.mjs here)
# Env: SYNCSCRIPT_BIN (default target/debug/syncscript), CHROMIUM_PATH (default /usr/bin/chromium),
# CI_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) and NGINX_BIN (default
# /usr/sbin/nginx) for multinode.test.mjs.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# openapi.test.mjs runs openapi-spec-validator and schemathesis.test.mjs runs Schemathesis (both
# PyPI) on the served document; they live in the venv that ../python/venv.sh keeps, so that
# nothing is installed into the system's Python.
../python/venv.sh >/dev/null

if [ "$#" -eq 0 ]; then
  set -- client-unit.test.mjs client.test.mjs client-cluster.test.mjs socketio.test.mjs delivery.test.mjs presence.test.mjs multinode.test.mjs rolling.test.mjs browser.test.mjs openapi.test.mjs docs.test.mjs schemathesis.test.mjs
fi

exec node --test --test-concurrency=1 "$@"
