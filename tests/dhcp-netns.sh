#!/usr/bin/env bash
# T1: the LAN's DHCP server end to end, over the real programs in network namespaces:
# celld (debug build, --no-system --no-network) is set up and given a static LAN address
# with the DHCP server on and a reservation; it renders dnsmasq's configuration, which the
# test runs as cell-dhcp.service would (but as root: the host has no cell-dhcp user); two
# clients on the LAN side ask with busybox udhcpc: the reserved one gets its address, the
# other one from the pool, both with the cell as router's neighbour, DNS and NTP server and
# the zone as domain; the lease appears in GET /v1/lan, and cell-dns answers both names
# (the reservation's, and the host name the other client sent) within seconds.
#   tests/dhcp-netns.sh [TARGET_DIR]     (root; skips with a message otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/check.sh
. tests/lib/local-cell.sh
require_root "dhcp-netns: needs root for network namespaces"
require_tool dnsmasq "dhcp-netns: missing dnsmasq (make deps)"
require_tool busybox "dhcp-netns: missing busybox (make deps)"
require_tool kdig "dhcp-netns: missing kdig (make deps)"
local_cell_netns "$0" "$@"

bin=$(realpath "${1:-target/debug}")
lan=cell-lan-$$
ip netns add "$lan"
on_exit "ip netns del $lan 2>/dev/null"
# The cell's LAN port, and the LAN with two clients behind a bridge.
ip link add lan0 type veth peer name uplink netns "$lan"
ip addr add 192.168.77.2/24 dev lan0 && ip link set lan0 up
ip netns exec "$lan" ip link add br0 type bridge
for n in 1 2; do
    ip netns exec "$lan" ip link add "client$n" type veth peer name "port$n"
    ip netns exec "$lan" ip link set "port$n" master br0 up
    ip netns exec "$lan" ip link set "client$n" address "52:54:00:77:00:0$n" up
done
ip netns exec "$lan" ip link set uplink master br0 up
ip netns exec "$lan" ip link set br0 up

mkdir -p "$tmp/state" "$tmp/run"
celld_socket=$tmp/run/celld.sock
"$bin/celld" --socket "$celld_socket" --state-dir "$tmp/state" --run-dir "$tmp/run" \
    --web-user root --no-system --no-network --uplink-resolvers "$tmp/resolv.conf" \
    >"$tmp/celld.log" 2>&1 &
celld_pid=$!
on_exit "kill $celld_pid 2>/dev/null; wait $celld_pid 2>/dev/null"
on_failure "echo '--- celld ---'; tail -n 20 '$tmp/celld.log'"
wait_until 10 test -S "$celld_socket" || die "celld does not start"
code=$(cat "$tmp/state/setup-code")
setup="{\"code\":\"$code\",\"cell_name\":\"home\",\"domain\":{\"mode\":\"internal\"},\"timezone\":\"UTC\",\"admin_username\":\"alice\",\"admin_password\":\"correct horse battery\",\"services\":{}}"
check "the cell is set up" [ "$(celld_api POST /v1/setup "$setup")" = 200 ]
lan_settings='{"addressing":{"mode":"static","address":"192.168.77.2/24","gateway":"192.168.77.1"},
  "dhcp_server":{"enabled":true,"pool_start":"192.168.77.100","pool_size":20,"lease_seconds":600,
  "reservations":[{"mac":"52:54:00:77:00:01","address":"192.168.77.20","name":"printer"}]}}'
check "a static LAN address with the DHCP server on is accepted, waiting for confirmation" \
    [ "$(celld_api PUT /v1/lan "$lan_settings")" = 202 ]
generation=$(field 'v["pending_change"]["generation"]')
check "and confirmed" [ "$(celld_api POST /v1/changes/confirm "{\"generation\":$generation}")" = 200 ]
conf=$tmp/run/dhcp/dnsmasq.conf
check "celld rendered dnsmasq's configuration" wait_until 10 test -s "$conf"

# As cell-dhcp.service runs it, but as root (the image has the cell-dhcp user, this host not).
sed 's/^user=.*/user=root/; s/^group=.*/group=root/' "$conf" >"$tmp/dnsmasq.conf"
dnsmasq --keep-in-foreground --log-facility="$tmp/dnsmasq.log" --conf-file="$tmp/dnsmasq.conf" &
dhcp_pid=$!
on_exit "kill $dhcp_pid 2>/dev/null; wait $dhcp_pid 2>/dev/null"
on_failure "echo '--- dnsmasq ---'; tail -n 20 '$tmp/dnsmasq.log'"
"$bin/cell-dns" --zone "$tmp/run/dns/zone.json" --listen 192.168.77.2:53 >"$tmp/dns.log" 2>&1 &
dns_pid=$!
on_exit "kill $dns_pid 2>/dev/null; wait $dns_pid 2>/dev/null"

# ask N [HOSTNAME]: client N asks for a lease; what it was offered lands in $tmp/lease-N.
ask() {
    UDHCPC_RECORD=$tmp/lease-$1 ip netns exec "$lan" busybox udhcpc -i "client$1" -f -q -n \
        -t 5 -T 1 -s tests/lib/udhcpc-record.sh ${2:+-x "hostname:$2"} >>"$tmp/udhcpc.log" 2>&1
}
offered() { sed -n "s/^$2=//p" "$tmp/lease-$1"; }
check "the reserved client gets a lease" ask 1
check "its reserved address (got $(offered 1 ip))" [ "$(offered 1 ip)" = 192.168.77.20 ]
check "the cell as DNS and NTP server, the gateway as router, the zone as domain" \
    [ "$(offered 1 dns) $(offered 1 ntpsrv) $(offered 1 router) $(offered 1 domain)" = "192.168.77.2 192.168.77.2 192.168.77.1 home.cell" ]
check "another client gets an address from the pool" ask 2 laptop
check "within 192.168.77.100-119 (got $(offered 2 ip))" \
    bash -c '[[ $1 =~ ^192\.168\.77\.(1[01][0-9])$ ]]' _ "$(offered 2 ip)"
leased() { celld_api GET /v1/lan >/dev/null && [ "$(field 'len(v["leases"])')" = 2 ]; }
check "both leases are listed by the API" wait_until 10 leased
check "with the host name the second client sent" \
    [ "$(field '[l["hostname"] for l in v["leases"] if l["mac"] == "52:54:00:77:00:02"][0]')" = laptop ]
name_is() { [ "$(kdig +time=1 +retry=0 +short @192.168.77.2 "$1.home.cell" A 2>/dev/null)" = "$2" ]; }
check "the reservation's name resolves (printer.home.cell)" wait_until 10 name_is printer 192.168.77.20
check "the leased client's name resolves (laptop.home.cell) within seconds" \
    wait_until 10 name_is laptop "$(offered 2 ip)"
finish "# the DHCP checks passed"
