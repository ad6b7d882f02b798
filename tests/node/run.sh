#!/usr/bin/env bash
# Runs the Node suites (socket.io-client and Chromium) against the server binary.
# Usage: tests/node/run.sh [test files...]   (default: every *.test.mjs here)
# Env: SYNCSCRIPT_BIN (default target/debug/syncscript), CHROMIUM_PATH (default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi

if [ "$#" -eq 0 ]; then
  set -- socketio.test.mjs browser.test.mjs
fi

exec node --test --test-concurrency=1 "$@"
