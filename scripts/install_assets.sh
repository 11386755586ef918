#!/usr/bin/env bash
# Install the dashboard's third-party browser assets (uPlot, pinned in
# package-lock.json, from the npm registry) into sematic_metrics/service/static/vendor/,
# which is git-ignored and included in wheels. Idempotent: does nothing when the
# pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=sematic_metrics/service/static/vendor
python=${PYTHON:-python3}
want=$("$python" -c 'import json; print(json.load(open("package-lock.json"))["packages"]["node_modules/uplot"]["version"])')
if [ "$(cat "$dest/VERSION" 2>/dev/null || true)" = "uplot@$want" ] && [ -f "$dest/uPlot.esm.js" ]; then
    echo "dashboard assets: uplot@$want already installed in $dest"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install_assets.sh: npm is needed to fetch uplot@$want (Debian: apt-get install -y npm)" >&2
    exit 1
fi
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
src=node_modules/uplot
got=$("$python" -c 'import json; print(json.load(open("node_modules/uplot/package.json"))["version"])')
if [ "$got" != "$want" ]; then
    echo "install_assets.sh: npm installed uplot@$got, expected $want" >&2
    exit 1
fi
mkdir -p "$dest"
cp "$src/dist/uPlot.esm.js" "$src/dist/uPlot.min.css" "$dest/"
cp "$src/LICENSE" "$dest/uPlot.LICENSE"
echo "uplot@$want" > "$dest/VERSION"
echo "dashboard assets: installed uplot@$want into $dest"
