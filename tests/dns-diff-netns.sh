#!/usr/bin/env bash
# T1: differential test. cell-dns and NSD serve the same zone (tests/dns/diff.json, the
# snapshot celld would render; tests/dns/diff.zone, its LAN view as a master file) in a
# network namespace, and answer every query in tests/dns/diff-queries.txt (NXDOMAIN,
# NODATA, empty non-terminals, CNAME chains, ANY, case, TCP, truncation and the TCP retry
# after it) with the same response code, flags, answer and authority sections; malformed
# packets get FORMERR or nothing, never a crash.
#   tests/dns-diff-netns.sh [path/to/cell-dns]     (root; skips with a message otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/check.sh
. tests/lib/local-cell.sh
. tests/lib/nsd.sh
require_root "dns-diff: needs root for a network namespace"
require_tool kdig "dns-diff: missing kdig (make deps)"
require_tool nsd "dns-diff: missing nsd (make deps)"
local_cell_netns "$0" "$@"

dns=$(realpath "${1:-target/debug/cell-dns}")
ip addr add 192.168.1.2/32 dev lo
ip addr add 192.168.1.3/32 dev lo

cp tests/dns/diff.json "$tmp/zone.json"
"$dns" --zone "$tmp/zone.json" >"$tmp/dns.log" 2>&1 &
dns_pid=$!
on_exit "kill $dns_pid 2>/dev/null; wait $dns_pid 2>/dev/null"
on_failure "echo '--- cell-dns ---'; tail -n 20 '$tmp/dns.log'"
nsd_start 192.168.1.3 diff.cell tests/dns/diff.zone
answering() { kdig +time=1 +retry=0 @192.168.1.2 diff.cell SOA 2>&1 | grep -q 'status: NOERROR'; }
wait_until 10 answering || die "cell-dns does not answer"

if python3 tests/lib/dns-diff.py 192.168.1.2 192.168.1.3 tests/dns/diff-queries.txt; then
    pass "cell-dns answers like NSD"
else
    fail "cell-dns answers like NSD"
fi
malformed=$(python3 tests/lib/dns-malformed.py 192.168.1.2 nas.diff.cell)
check "malformed packets are answered FORMERR/REFUSED/NOTIMP or dropped ($malformed otherwise)" [ "$malformed" = 0 ]
check "and cell-dns answers on" answering
finish "# the differential DNS test passed"
