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
require_tool certutil "browser-nspawn: missing certutil (make deps installs libnss3-tools)"
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm install --no-audit --no-fund --silent)
fi

stop_container() { $nspawn stop $name >/dev/null 2>&1 || true; }
on_exit stop_container
$nspawn stop $name 2>/dev/null || true
$nspawn start "$tree" $name "$net"
wait_for_url "http://10.77.$net.2/ca.pem" 120 >/dev/null || true
code=$($nspawn exec $name cellctl setup-code | sed -n 's/^Setup code: //p')
# The browser trusts the cell's root the way a person installs it: in its certificate
# database (NSS, in the HOME it runs with), checked against the fingerprint first.
trust_cell_root "http://10.77.$net.2" || die "the cell's root certificate did not download"
browser_home=$tmp/home
mkdir -p "$browser_home/.pki/nssdb"
certutil -d "sql:$browser_home/.pki/nssdb" -N --empty-password
certutil -d "sql:$browser_home/.pki/nssdb" -A -t "C,," -n "Personal Internet Cell" -i "$cell_root"
rm -rf "$shots"
# The journey's downloads go through Node (playwright's request API): it trusts the root too.
HOME=$browser_home NODE_EXTRA_CA_CERTS=$cell_root node tests/browser/wizard.mjs "https://10.77.$net.2" "$code" "$shots" \
    "$(fingerprint_of "$cell_root")"
echo "# screenshots: $shots"
