#!/usr/bin/env bash
# T1: the whole DNS path over the real binaries (celld, cell-web, cell-dns; release builds)
# in a network namespace of their own: the cell is set up, celld renders its zone, cell-dns
# answers on the VPN address that zone lists; then, while dnsperf keeps a steady load on
# cell-dns, a record is added through the web API and is answered within 1 s (the time is
# reported), with no query lost and cell-dns never restarted.
#   tests/dns-live-netns.sh BIN_DIR     (root; skips with a message otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/check.sh
. tests/lib/local-cell.sh
require_root "dns-live: needs root for a network namespace"
require_tool kdig "dns-live: missing kdig (make deps)"
require_tool dnsperf "dns-live: missing dnsperf (make deps)"
local_cell_netns "$0" "$@"

bin=$(realpath "${1:-target/release}")
password="correct horse battery"
local_cell_start "$bin"
check "the cell is set up through cell-web" local_cell_setup "$password"
"$bin/cell-dns" --zone "$tmp/run/dns/zone.json" >"$tmp/dns.log" 2>&1 &
dns_pid=$!
on_exit "kill $dns_pid 2>/dev/null; wait $dns_pid 2>/dev/null"
on_failure "echo '--- cell-dns ---'; tail -n 20 '$tmp/dns.log'"
# The VPN gateway's address, which the zone lists: celld runs with --no-network here, so
# the address is put on loopback by hand, as the VPN's interface would carry it.
ip addr add 10.87.0.1/32 dev lo
soa() { kdig +time=1 +retry=0 @10.87.0.1 home.cell SOA 2>&1 | grep -q 'status: NOERROR'; }
check "cell-dns answers on the VPN address from the zone celld rendered" wait_until 10 soa

check "alice logs in" api_login alice "$password"
printf '%s\n' 'home.cell A' 'home.cell SOA' 'nope.home.cell A' 'home.cell NS' >"$tmp/queries"
dnsperf -s 10.87.0.1 -d "$tmp/queries" -l 6 -Q 2000 -c 4 >"$tmp/dnsperf.txt" 2>&1 &
load=$!
sleep 2
record='{"records":[{"name":"printer","type":"A","address":"192.168.1.9"}]}'
start=$(date +%s%N)
check "a record is added through the web API" [ "$(api PUT /api/v1/dns "$record")" = 200 ]
printer() { [ "$(kdig +time=1 +retry=0 +short @10.87.0.1 printer.home.cell A 2>/dev/null)" = 192.168.1.9 ]; }
until printer || [ $(($(date +%s%N) - start)) -gt 3000000000 ]; do sleep 0.02; done
took=$((($(date +%s%N) - start) / 1000000))
echo "# printer.home.cell answered ${took} ms after the API call returned, under load"
check "it is answered within 1 s (${took} ms)" [ "$took" -le 1000 ]
wait "$load" || true
sent=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' "$tmp/dnsperf.txt")
lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' "$tmp/dnsperf.txt")
echo "# dnsperf: ${sent:-?} queries sent at 2000/s, ${lost:-?} lost"
check "the load ran (${sent:-0} queries)" [ "${sent:-0}" -gt 5000 ]
check "no query was lost while the zone was swapped (lost: ${lost:-?})" [ "${lost:-1}" = 0 ]
check "cell-dns is the same process" kill -0 "$dns_pid"
finish "# the live DNS checks passed"
