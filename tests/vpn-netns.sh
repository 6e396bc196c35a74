#!/usr/bin/env bash
# T1: the VPN end to end in network namespaces of the real kernel. celld runs its real
# reconcile code in a "cell" namespace; two client namespaces run wireguard-go
# interfaces configured only from the .conf files celld exports. Checks: handshakes,
# per-peer service access in the firewall, internet exit through the forwarding the
# image's own sysctl file turns on, disabling a device or its owner within 1 s, a
# firewall that cannot be written leaving the device without peers, removal leaving no
# trace, restarts that keep tunnels and change nothing, foreign objects left alone.
#   tests/vpn-netns.sh [path/to/celld]      (root; skips with a message otherwise)
set -euo pipefail
# shellcheck source=tests/lib/check.sh
. "$(dirname "$0")/lib/check.sh"

require_root "vpn-netns: needs root for network namespaces"
for tool in wireguard-go wg wg-quick nft ip curl python3; do
    require_tool "$tool" "vpn-netns: missing $tool (make deps)"
done

celld=${1:-target/debug/celld}
[ -x "$celld" ] || { echo "vpn-netns: no celld at $celld (cargo build -p celld)" >&2; exit 1; }
celld=$(realpath "$celld")
forwarding=$(realpath "$(dirname "$0")/../rootfs/usr/lib/sysctl.d/50-cell-forwarding.conf")

id=$$
cell=cellns$id c1=c1ns$id c2=c2ns$id wan=wanns$id
# wireguard-go's UAPI sockets are shared by all namespaces: names must be unique.
wg_cell=cwg$id wg_c1=c1wg$id wg_c2=c2wg$id
work=$tmp
socket=$work/celld.sock
# celld's own API, on its socket (no session, no CSRF token): api GET /v1/status
CELL_BASE=http://cell
CELL_SOCKET=$socket
endpoint=10.200.0.1
celld_pid=

log() { echo "vpn-netns: $*"; }
# Stops the test at the first failure; the tail of celld's log follows (on_failure below).
fatal() {
    echo "vpn-netns: FAIL: $*" >&2
    exit 1
}

cleanup() {
    [ -n "$celld_pid" ] && kill "$celld_pid" 2>/dev/null && wait "$celld_pid" 2>/dev/null
    for dev in $wg_cell $wg_c1 $wg_c2; do
        rm -f "/var/run/wireguard/$dev.sock"
        pkill -f "wireguard-go $dev" 2>/dev/null
    done
    for ns in $cell $c1 $c2 $wan; do ip netns del "$ns" 2>/dev/null; done
}
celld_log() {
    [ -f "$work/celld.log" ] && grep -v "^ *[0-9]*: \|^ *at " "$work/celld.log" | tail -30 >&2
}
on_exit cleanup
on_failure celld_log

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

expect() { # STATUS METHOD PATH [JSON]
    local want=$1; shift
    local got
    got=$(api "$@")
    [ "$got" = "$want" ] || fatal "$1 $2 answered $got, expected $want: $(cat "$answer")"
}

# --- topology: clients reach the cell's endpoint address over their own veth ---
for ns in $cell $c1 $c2 $wan; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
done
in_ns "$cell" ip addr add $endpoint/32 dev lo
n=1
for client in $c1 $c2; do
    ip link add "v$n-$id" netns "$cell" type veth peer name eth0 netns "$client"
    in_ns "$cell" ip addr add "10.201.$n.1/30" dev "v$n-$id"
    in_ns "$cell" ip link set "v$n-$id" up
    in_ns "$client" ip addr add "10.201.$n.2/30" dev eth0
    in_ns "$client" ip link set eth0 up
    in_ns "$client" ip route add $endpoint/32 via "10.201.$n.1"
    n=$((n + 1))
done
# An "internet" host beyond the cell's uplink, for the internet-exit check.
ip link add "up-$id" netns "$cell" type veth peer name eth0 netns "$wan"
in_ns "$cell" ip addr add 198.51.100.1/24 dev "up-$id"
in_ns "$cell" ip link set "up-$id" up
in_ns "$wan" ip addr add 198.51.100.2/24 dev eth0
in_ns "$wan" ip link set eth0 up
# Forwarding as the image turns it on at boot (systemd-sysctl reads this same file).
in_ns "$cell" sysctl -q -p "$forwarding" >/dev/null
# Objects celld did not create, which it must leave alone.
in_ns "$cell" ip addr add 10.250.0.1/24 dev "v1-$id"
in_ns "$cell" nft add table inet foreign
in_ns "$cell" nft add chain inet foreign keep

start_celld() { # [PATH for celld]
    ip netns exec "$cell" env PATH="${1:-$PATH}" "$celld" --socket "$socket" --state-dir "$work/state" \
        --wg-interface "$wg_cell" --web-user nobody --no-system >>"$work/celld.log" 2>&1 &
    celld_pid=$!
    for _ in $(seq 100); do
        [ -S "$socket" ] && api GET /v1/status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fatal "celld did not start"
}

stop_celld() {
    kill "$celld_pid"
    wait "$celld_pid" 2>/dev/null || true
    celld_pid=
    rm -f "$socket"
}

start_celld
expect 200 GET /v1/setup-code
code=$(field 'v["code"]')
expect 200 POST /v1/setup "{\"code\":\"$code\",\"cell_name\":\"home\",\"domain\":{\"mode\":\"internal\"},\"timezone\":\"UTC\",\"admin_username\":\"alice\",\"admin_password\":\"correct horse battery\",\"services\":{}}"
expect 200 PUT /v1/vpn "{\"subnet4\":\"10.87.0.0/20\",\"listen_port\":51820,\"endpoint\":\"$endpoint\"}"
wait_until 10 settled /v1/status || fatal "the reconciler did not apply the setup: $(cat "$answer")"
expect 200 GET /v1/vpn
backend=$(field 'v["backend"]')
log "cell device $wg_cell runs on: $backend"
[ "$backend" = userspace ] || [ "$backend" = kernel ] || fatal "no WireGuard device: $(cat "$answer")"

expect 201 POST /v1/vpn/peers '{"name":"withfiles","owner":"alice","access":{"files":true},"internet_exit":true,"keepalive":5}'
expect 201 POST /v1/vpn/peers '{"name":"nofiles","owner":"alice","keepalive":5}'

# --- clients: configured only from the exported .conf ---
bring_up() { # NAMESPACE INTERFACE PEER
    local ns=$1 dev=$2 peer=$3
    expect 200 GET "/v1/vpn/peers/$peer/config"
    cp "$answer" "$work/$dev.conf"
    wg-quick strip "$work/$dev.conf" >"$work/$dev.stripped"
    in_ns "$ns" wireguard-go "$dev" >/dev/null 2>&1
    in_ns "$ns" wg setconf "$dev" "$work/$dev.stripped"
    local addresses allowed
    addresses=$(sed -n 's/^Address = //p' "$work/$dev.conf" | tr ',' ' ')
    allowed=$(sed -n 's/^AllowedIPs = //p' "$work/$dev.conf" | tr ',' ' ')
    for address in $addresses; do in_ns "$ns" ip addr add "$address" dev "$dev" nodad 2>/dev/null || in_ns "$ns" ip addr add "$address" dev "$dev"; done
    in_ns "$ns" ip link set "$dev" up
    for net in $allowed; do
        case $net in
            # Everything through the tunnel, as wg-quick does; the more specific routes
            # (the endpoint's, the veth's own subnet) still win.
            0.0.0.0/0) for half in 0.0.0.0/1 128.0.0.0/1; do in_ns "$ns" ip route add $half dev "$dev"; done ;;
            ::/0) for half in ::/1 8000::/1; do in_ns "$ns" ip -6 route add $half dev "$dev"; done ;;
            *) in_ns "$ns" ip route add "$net" dev "$dev" ;;
        esac
    done
}
bring_up "$c1" "$wg_c1" withfiles
bring_up "$c2" "$wg_c2" nofiles
wait_until 10 settled /v1/status || fatal "the devices were not applied: $(cat "$answer")"

gateway=10.87.0.1
files=$(api GET /v1/vpn >/dev/null; field 'v["services"]["files"]')
log "files service stands in at $files:443"
in_ns "$c1" ping -c 1 -W 5 $gateway >/dev/null || fatal "client 1 cannot reach the cell through the tunnel"
in_ns "$c2" ping -c 1 -W 5 $gateway >/dev/null || fatal "client 2 cannot reach the cell through the tunnel"

expect 200 GET /v1/vpn/peers
handshakes=$(field 'sum(1 for p in v if p["live"] and p["live"]["last_handshake"])')
[ "$handshakes" = 2 ] || fatal "expected 2 handshakes, saw $handshakes: $(cat "$answer")"
log "handshakes complete for both clients"

# A TCP listener standing in for the files service, on every address of the cell.
ip netns exec "$cell" python3 -m http.server 443 --bind 0.0.0.0 >/dev/null 2>&1 &
server_pid=$!
ip netns exec "$wan" python3 -m http.server 80 --bind 198.51.100.2 >/dev/null 2>&1 &
wan_pid=$!
stop_servers() { kill "$server_pid" "$wan_pid" 2>/dev/null; }
on_exit stop_servers
# Python can take a while to start on a busy machine: wait until both servers listen.
listening() { ip netns exec "$1" ss -ltnH "sport = :$2" | grep -q LISTEN; }
wait_until 20 listening "$cell" 443 || fatal "the stand-in files service did not start"
wait_until 20 listening "$wan" 80 || fatal "the stand-in internet host did not start"

reach() { in_ns "$1" curl -s -o /dev/null --max-time "${3:-2}" "$2"; }
reach "$c1" "http://$files:443/" || fatal "client with files access cannot reach the files service"
if reach "$c2" "http://$files:443/"; then fatal "client without files access reached the files service"; fi
reach "$c2" "http://$gateway:443/" || fatal "client 2 cannot reach the web UI on the gateway"
log "files access: granted peer reaches it, the other is dropped"

reach "$c1" "http://198.51.100.2/" || fatal "internet-exit client cannot reach the internet host"
log "internet exit: client 1 reaches 198.51.100.2 through the cell (masqueraded)"

# --- restart: tunnels stay up, nothing is rewritten ---
before_table=$(in_ns "$cell" nft -a list table inet cell)
before_peers=$(in_ns "$cell" wg show "$wg_cell" peers | sort)
stop_celld
in_ns "$c2" ping -c 1 -W 3 $gateway >/dev/null || fatal "the tunnel dropped while celld was stopped"
start_celld
wait_until 10 settled /v1/status || fatal "celld did not settle after its restart: $(cat "$answer")"
after_table=$(in_ns "$cell" nft -a list table inet cell)
[ "$before_table" = "$after_table" ] || fatal "restarting celld rewrote the firewall table"
[ "$before_peers" = "$(in_ns "$cell" wg show "$wg_cell" peers | sort)" ] || fatal "restarting celld changed the peers"
in_ns "$c2" ping -c 1 -W 3 $gateway >/dev/null || fatal "the tunnel dropped across a celld restart"
log "restart: tunnels kept, table and peers unchanged (rule handles identical)"

# --- a firewall that cannot be written: the device carries no peers ---
# An nft that refuses every command, first on celld's PATH (wireguard-go stays reachable):
# the table can be neither read nor written.
mkdir -p "$work/broken-nft"
printf '#!/bin/sh\necho "nft: table inet cell is locked (test)" >&2\nexit 1\n' >"$work/broken-nft/nft"
chmod +x "$work/broken-nft/nft"
stop_celld
start_celld "$work/broken-nft:$PATH"
held_back() {
    [ "$(api GET /v1/status)" = 200 ] || return 1
    [ "$(field '"held back" in ([a for a in v["appliers"] if a["applier"] == "wireguard"][0].get("error") or "")')" = True ]
}
wait_until 10 held_back || fatal "WireGuard was not held back without its firewall: $(cat "$answer")"
wireguard_error=$(field '[a for a in v["appliers"] if a["applier"] == "wireguard"][0]["error"]')
firewall_error=$(field '[a for a in v["appliers"] if a["applier"] == "firewall"][0]["error"]')
case $wireguard_error in *"held back until firewall"*) ;; *) fatal "the status does not name the firewall: $wireguard_error" ;; esac
case $firewall_error in *nft*) ;; *) fatal "the firewall's status does not say why: $firewall_error" ;; esac
[ -z "$(in_ns "$cell" wg show "$wg_cell" peers)" ] || fatal "peers stayed on the device without a firewall"
if in_ns "$c2" ping -c 1 -W 1 $gateway >/dev/null; then fatal "a peer passes traffic without a firewall"; fi
expect 200 GET /v1/vpn/peers
[ "$(field 'sum(1 for p in v if p["live"] and p["live"]["last_handshake"])')" = 0 ] || fatal "a peer kept its handshake"
log "no firewall: no peer on the device, no handshake; the status says: $wireguard_error"
stop_celld
start_celld
wait_until 10 settled /v1/status || fatal "celld did not recover with a working nft: $(cat "$answer")"
# The cell forgot both sessions: each client handshakes again once its packets go
# unanswered (keepalive + rekey timeout, about 15 s), as after re-enabling below.
for client in $c1 $c2; do
    wait_until 30 in_ns "$client" ping -c 1 -W 1 $gateway >/dev/null \
        || fatal "$client did not come back with the firewall"
done
log "firewall back: peers back, traffic flows"

# --- disabling stops traffic within 1 s ---
# Succeeds once NAMESPACE can no longer ping the cell, polling for at most 1 s.
stops_within_1s() {
    local ns=$1 started=$EPOCHREALTIME
    while in_ns "$ns" ping -c 1 -W 0.2 $gateway >/dev/null 2>&1; do
        (( $(python3 -c "import sys; print(int(float(sys.argv[2]) - float(sys.argv[1]) > 1))" "$started" "$EPOCHREALTIME") )) && return 1
    done
    log "traffic from $ns stopped $(python3 -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$started" "$EPOCHREALTIME") ms after the change was answered"
}
wait_until 30 in_ns "$c1" ping -c 1 -W 1 $gateway >/dev/null || fatal "client 1 lost its tunnel"
expect 200 PATCH /v1/vpn/peers/withfiles '{"enabled":false}'
stops_within_1s "$c1" || fatal "disabled peer still passes traffic after 1 s"
if reach "$c1" "http://$files:443/" 1; then fatal "disabled peer still reaches the files service"; fi
log "disable: traffic stopped within 1 s"
expect 200 PATCH /v1/vpn/peers/withfiles '{"enabled":true}'
# The cell forgot the old session: the client's WireGuard starts a new handshake once its
# packets go unanswered (keepalive + rekey timeout, about 15 s).
back=
for _ in $(seq 30); do
    if in_ns "$c1" ping -c 1 -W 1 $gateway >/dev/null; then back=yes; break; fi
done
[ -n "$back" ] || fatal "re-enabled peer cannot reach the cell"

# --- disabling the owner ends their devices' traffic at once ---
expect 201 POST /v1/users '{"name":"carol","role":"admin","password":"another long password"}'
wait_until 30 in_ns "$c2" ping -c 1 -W 1 $gateway >/dev/null || fatal "client 2 lost its tunnel"
expect 200 PATCH /v1/users/alice '{"disabled":true}'
stops_within_1s "$c2" || fatal "a disabled user's device still passes traffic after 1 s"
log "disabling the owner: her devices' traffic stopped within 1 s"
expect 200 PATCH /v1/users/alice '{"disabled":false}'
back=
for _ in $(seq 30); do
    if in_ns "$c2" ping -c 1 -W 1 $gateway >/dev/null; then back=yes; break; fi
done
[ -n "$back" ] || fatal "the re-enabled user's device cannot reach the cell"

# --- removal leaves no trace ---
expect 200 GET /v1/vpn/peers/withfiles
key=$(field 'v["public_key"]')
expect 204 DELETE /v1/vpn/peers/withfiles
in_ns "$cell" wg show "$wg_cell" peers | grep -qF "$key" && fatal "removed peer is still on the device"
in_ns "$cell" nft list table inet cell | grep -qE '10\.87\.0\.16([^0-9]|$)' && fatal "removed peer is still in a set"
in_ns "$cell" nft list table inet cell | grep -qE '::10([^0-9a-f:]|$)' && fatal "removed peer's IPv6 address is still in a set"
ls "$work/state/secrets" | grep -q "^peer-$(python3 -c 'import base64,sys; print(base64.b64decode(sys.argv[1]).hex())' "$key")" && fatal "removed peer's key is still stored"
expect 201 POST /v1/vpn/peers '{"name":"newcomer","owner":"alice"}'
[ "$(field 'v["address4"]')" = 10.87.0.16 ] || fatal "the removed peer's address was not freed"
log "remove: no peer, set element, key or address allocation left"

# --- foreign objects are untouched ---
in_ns "$cell" ip -o addr show dev "v1-$id" | grep -q 10.250.0.1/24 || fatal "celld removed an address it did not create"
in_ns "$cell" nft list table inet foreign >/dev/null || fatal "celld removed a table it does not own"
log "foreign address and nftables table left alone"

# --- bad input changes nothing ---
generation=$(api GET /v1/status >/dev/null; field 'v["generation"]')
expect 400 POST /v1/vpn/peers '{"name":"x","public_key":"AAAA"}'
[ "$(field 'v["field"]')" = public_key ] || fatal "malformed key not named"
expect 400 PUT /v1/vpn '{"subnet4":"10.201.0.0/16","listen_port":51820}'
[ "$(field 'v["field"]')" = subnet4 ] || fatal "overlapping subnet not named"
[ "$(api GET /v1/status >/dev/null; field 'v["generation"]')" = "$generation" ] || fatal "a refused request changed the settings"
log "bad input: 400 naming the field, nothing stored"

finish "vpn-netns: PASS"
