#!/usr/bin/env bash
# T1: cell-dns, the real binary, answering real kdig queries in a network namespace of its
# own, on the addresses its zone lists (one of them brought up only after it started): SOA and NS (UDP and TCP, authoritative), user records (A, CNAME, MX), a service
# name answered with the LAN
# address to a LAN client and the VPN address to a VPN peer with access, NXDOMAIN to a peer
# without; names outside the zone refused; a new zone snapshot written by celld picked up
# with no restart (the time it took is reported).
#   tests/dns-netns.sh [path/to/cell-dns]     (root; skips with a message otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/check.sh
. tests/lib/local-cell.sh
. tests/lib/nsd.sh
require_root "dns-netns: needs root for a network namespace"
require_tool kdig "dns-netns: missing kdig (make deps)"
require_tool nsd "dns-netns: missing nsd (make deps)"
require_tool unshare
local_cell_netns "$0" "$@"

dns=$(realpath "${1:-target/debug/cell-dns}")
# 10.87.0.1, the VPN gateway, comes up after cell-dns started (as the VPN's does).
for address in 192.168.1.2 192.168.1.3 192.168.1.50 10.87.0.16 10.87.0.17; do
    ip addr add "$address/32" dev lo
done

# write_zone SERIAL [LABEL [TLS_NAME]]: the snapshot celld renders, replaced atomically;
# with TLS_NAME the upstream is asked over DNS-over-TLS.
write_zone() {
    python3 - "$tmp/zone.json" "$1" "${2:-}" "${3:-}" <<'PY'
import json, os, sys
path, serial, extra, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
names = [
    {"label": "", "lan": ["192.168.1.2"], "vpn": ["10.87.0.1"]},
    {"label": "files", "service": "files", "lan": ["192.168.1.2"], "vpn": ["10.87.0.1"]},
]
listen = ["192.168.1.2", "10.87.0.1"]
upstreams = ["198.51.100.53:853" if tls else "198.51.100.53:53"]
if extra:
    names.append({"label": extra, "lan": ["192.168.1.9"], "vpn": ["10.87.0.9"]})
    listen.append("192.168.1.3")
zone = {"origin": "home.cell.", "serial": serial, "ttl": 60, "names": names,
        "vpn_networks": [["10.87.0.0", 20]],
        "listen": listen, "upstreams": upstreams,
        "upstream_tls": tls or None,
        "peers": [{"addresses": ["10.87.0.16"], "services": ["files"]},
                  {"addresses": ["10.87.0.17"], "services": []}],
        "records": [{"name": "nas", "ttl": 120, "type": "A", "address": "192.168.1.7"},
                    {"name": "www", "ttl": 120, "type": "CNAME", "target": "nas.home.cell."},
                    {"name": "@", "ttl": 120, "type": "MX", "preference": 10, "exchange": "mx.example.org"}]}
with open(path + ".new", "w") as f:
    json.dump(zone, f)
os.rename(path + ".new", path)
PY
}

write_zone 1
# A certificate authority of the test's own, which cell-dns trusts (SSL_CERT_FILE) to check
# the DNS-over-TLS upstream's certificate for dns.example.org.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=dns.example.org \
    -keyout "$tmp/dot.key" -out "$tmp/dot.csr" 2>/dev/null
printf 'subjectAltName=DNS:dns.example.org\n' >"$tmp/dot.ext"
openssl x509 -req -in "$tmp/dot.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 2 -extfile "$tmp/dot.ext" -out "$tmp/dot.pem" 2>/dev/null
SSL_CERT_FILE=$tmp/ca.pem "$dns" --zone "$tmp/zone.json" --port 53 >"$tmp/dns.log" 2>&1 &
dns_pid=$!
on_exit "kill $dns_pid 2>/dev/null; wait $dns_pid 2>/dev/null"
on_failure "echo '--- cell-dns ---'; tail -n 20 '$tmp/dns.log'"

ask() { kdig +time=2 +retry=0 "$@" 2>&1; }
answering() { ask @192.168.1.2 home.cell SOA | grep -q 'status: NOERROR'; }
wait_until 10 answering || die "cell-dns does not answer"
ip addr add 10.87.0.1/32 dev lo

soa=$(ask @192.168.1.2 -b 192.168.1.50 home.cell SOA)
check "SOA over UDP: NOERROR, authoritative, serial 1" \
    bash -c 'grep -q "status: NOERROR" <<<"$1" && grep -q "Flags: qr aa" <<<"$1" && grep -qE "SOA\s+home\.cell\. hostmaster\.home\.cell\. 1 " <<<"$1"' _ "$soa"
ns=$(ask @192.168.1.2 +tcp home.cell NS)
check "NS over TCP" bash -c 'grep -q "TCP" <<<"$1" && grep -qE "NS\s+home\.cell\." <<<"$1"' _ "$ns"
short() { kdig +time=2 +retry=0 +short "$@" 2>/dev/null; }
check "a LAN client gets the LAN address of files.home.cell" \
    [ "$(short @192.168.1.2 -b 192.168.1.50 files.home.cell A)" = 192.168.1.2 ]
check "a VPN peer with files access gets its VPN address" \
    [ "$(short @10.87.0.1 -b 10.87.0.16 files.home.cell A)" = 10.87.0.1 ]
check "a VPN peer without files access gets NXDOMAIN" \
    bash -c "kdig +time=2 +retry=0 @10.87.0.1 -b 10.87.0.17 files.home.cell A | grep -q 'status: NXDOMAIN'"
check "the same over TCP" \
    bash -c "kdig +time=2 +retry=0 +tcp @10.87.0.1 -b 10.87.0.17 files.home.cell A | grep -q 'status: NXDOMAIN'"
check "a CNAME answers with its target in the zone" \
    [ "$(short @192.168.1.2 www.home.cell A | tr '\n' ' ')" = "nas.home.cell. 192.168.1.7 " ]
check "a user MX record at the zone's apex" [ "$(short @192.168.1.2 home.cell MX)" = "10 mx.example.org." ]
check "a name outside the zone, asked without recursion, is refused" \
    bash -c "kdig +time=2 +retry=0 +norecurse @192.168.1.2 www.example.org A | grep -q 'status: REFUSED'"
check "a name in the zone that does not exist: NXDOMAIN with the SOA" \
    bash -c "kdig +time=2 +retry=0 @192.168.1.2 nope.home.cell A | grep -qE 'status: NXDOMAIN' && kdig +time=2 +retry=0 @192.168.1.2 nope.home.cell A | grep -q 'AUTHORITY SECTION'"

# --- forwarding: an "internet" in a namespace of its own, NSD serving example.org there ---
internet=cell-dns-test-$$
ip netns add "$internet"
on_exit "ip netns del $internet 2>/dev/null"
ip link add cell-up type veth peer name inet0 netns "$internet"
ip addr add 198.51.100.1/24 dev cell-up && ip link set cell-up up
ip netns exec "$internet" ip addr add 198.51.100.53/24 dev inet0
ip netns exec "$internet" ip link set inet0 up
ip netns exec "$internet" ip link set lo up
cat >"$tmp/example.org.zone" <<'ZONE'
$ORIGIN example.org.
@ 3600 IN SOA ns.example.org. admin.example.org. 1 3600 600 86400 300
@ 3600 IN NS ns.example.org.
ns 3600 IN A 198.51.100.53
www 300 IN A 203.0.113.80
mail 300 IN A 203.0.113.25
other 300 IN A 203.0.113.26
big 300 IN TXT "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
big 300 IN TXT "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
big 300 IN TXT "2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222"
big 300 IN TXT "3333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333"
big 300 IN TXT "4444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444"
big 300 IN TXT "5555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555"
ZONE
# NSD in the internet namespace; the queries reaching it are counted there by nftables.
ip netns exec "$internet" nft -f - <<'NFT'
table inet count {
    counter dns { }
    counter dot { }
    chain input { type filter hook input priority 0; udp dport 53 counter name dns; tcp dport 53 tcp flags syn counter name dns; tcp dport 853 tcp flags syn counter name dot; }
}
NFT
upstream_queries() {
    ip netns exec "$internet" nft -j list counter inet count "${1:-dns}" |
        python3 -c 'import json,sys; print([o["counter"]["packets"] for o in json.load(sys.stdin)["nftables"] if "counter" in o][0])'
}
NSD_TLS_PEM=$tmp/dot.pem NSD_TLS_KEY=$tmp/dot.key \
    nsd_start 198.51.100.53 example.org "$tmp/example.org.zone" "$tmp/nsd" "$internet"
before=$(upstream_queries)
first=$(kdig +time=3 +retry=0 @192.168.1.2 www.example.org A 2>&1)
check "a name outside the zone is forwarded upstream: www.example.org is 203.0.113.80, recursion available" \
    bash -c 'grep -qE "www\.example\.org\.\s+[0-9]+\s+IN\s+A\s+203\.0\.113\.80" <<<"$1" && grep -q "Flags: qr rd ra" <<<"$1"' _ "$first"
after_first=$(upstream_queries)
second=$(kdig +time=3 +retry=0 @192.168.1.2 www.example.org A 2>&1)
after_second=$(upstream_queries)
check "the first answer asked upstream once ($before -> $after_first)" [ $((after_first - before)) -eq 1 ]
check "the second came from the cache, with no upstream query ($after_first -> $after_second)" \
    [ "$after_second" -eq "$after_first" ]
check "and the same address" grep -q 203.0.113.80 <<<"$second"
check "an upstream NXDOMAIN is passed on" \
    bash -c "kdig +time=3 +retry=0 @192.168.1.2 nope.example.org A 2>&1 | grep -q 'status: NXDOMAIN'"
big=$(kdig +time=3 +retry=0 @192.168.1.2 big.example.org TXT 2>&1)
check "an answer too big for UDP upstream is fetched over TCP (6 TXT records)" \
    [ "$(grep -cE 'big\.example\.org\.\s+[0-9]+\s+IN\s+TXT' <<<"$big")" = 6 ]

start=$(date +%s%N)
write_zone 2 printer
printer() { [ "$(short @192.168.1.2 printer.home.cell A)" = 192.168.1.9 ]; }
for _ in $(seq 100); do printer && break; sleep 0.05; done
took=$((($(date +%s%N) - start) / 1000000))
echo "# a new zone answered after $took ms (no restart)"
check "a record in a new zone snapshot answers without a restart" printer
check "and the old answers still hold" [ "$(short @192.168.1.2 home.cell A)" = 192.168.1.2 ]
check "an address the new zone lists is answered on" [ "$(short @192.168.1.3 home.cell A)" = 192.168.1.2 ]
check "an address no zone lists is not" \
    bash -c "! kdig +time=1 +retry=0 @192.168.1.50 home.cell SOA 2>&1 | grep -q 'status: NOERROR'"
check "cell-dns is the same process" kill -0 "$dns_pid"
printf '{broken' >"$tmp/zone.json.new" && mv "$tmp/zone.json.new" "$tmp/zone.json"
sleep 0.6
check "a broken snapshot is refused and the zone in force kept" printer
# --- DNS-over-TLS to the upstream: the ISP would see only a TLS connection -------------
plain_before=$(upstream_queries dns)
write_zone 3 printer dns.example.org
sleep 0.6
dot=$(kdig +time=3 +retry=0 @192.168.1.2 mail.example.org A 2>&1)
check "over DNS-over-TLS the upstream answers (mail.example.org)" grep -qE 'mail\.example\.org\.\s+[0-9]+\s+IN\s+A\s+203\.0\.113\.25' <<<"$dot"
tls_connections=$(upstream_queries dot)
plain_after=$(upstream_queries dns)
check "through a TLS connection to port 853 ($tls_connections), and no plain query ($plain_before -> $plain_after)" \
    [ "$tls_connections" -ge 1 -a "$plain_after" = "$plain_before" ]
write_zone 4 printer wrong.example.org
sleep 0.6
check "an upstream whose certificate is for another name is not asked: SERVFAIL" \
    bash -c "kdig +time=5 +retry=0 @192.168.1.2 other.example.org A 2>&1 | grep -q 'status: SERVFAIL'"
finish "# all DNS checks passed"
