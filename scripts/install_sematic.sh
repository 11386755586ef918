#!/usr/bin/env bash
# Install Sematic 0.41 (server, runner, client) into its own git-ignored
# virtualenv, .venv-sematic/, for the tests that talk to a real Sematic server
# (upstream mode, import-sematic). Sematic is not a dependency of this project.
# Idempotent: does nothing when sematic==0.41.0 is already installed there.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SEMATIC_VENV:-.venv-sematic}
want=0.41.0
python=${PYTHON:-python3}
if [ -x "$venv/bin/python" ] &&
    [ "$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("sematic"))' 2>/dev/null || true)" = "$want" ]; then
    echo "sematic==$want already installed in $venv"
    exit 0
fi
test -x "$venv/bin/python" || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "sematic==$want"
echo "sematic==$want installed in $venv"
