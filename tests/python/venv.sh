#!/usr/bin/env bash
# Creates or refreshes tests/python/.venv from requirements.txt (pinned versions): the OpenAPI
# validator, and whatever other Python tools the suites run. Prints the venv's path.
set -euo pipefail
cd "$(dirname "$0")"
stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt "$stamp"; then
  python3 -m venv .venv >&2
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt >&2
  cp requirements.txt "$stamp"
fi
echo "$PWD/.venv"
