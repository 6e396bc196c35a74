#!/usr/bin/env bash
# T2 browser test: boots a fresh image and walks the first-run journey in headless Chromium
# (Debian's, driven by playwright-core). Screenshots of every page are kept in
# build/test-output/screenshots.
#   tests/browser-nspawn.sh TREE
set -euo pipefail
cd "$(dirname "$0")/.."

tree=${1:?usage: $0 IMAGE_TREE}
name=cell-web-t2
net=${CELL_BROWSER_NET:-3}
nspawn=scripts/cell-nspawn
shots=build/test-output/screenshots
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh

require_root "booting the image needs root"
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm install --no-audit --no-fund --silent)
fi

stop_container() { $nspawn stop $name >/dev/null 2>&1 || true; }
on_exit stop_container
$nspawn stop $name 2>/dev/null || true
$nspawn start "$tree" $name "$net"
wait_for_url "http://10.77.$net.2/health" 120 >/dev/null || true
code=$($nspawn exec $name cellctl setup-code | sed -n 's/^Setup code: //p')
rm -rf "$shots"
node tests/browser/wizard.mjs "http://10.77.$net.2" "$code" "$shots"
echo "# screenshots: $shots"
