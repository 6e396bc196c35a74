#!/usr/bin/env bash
# T3 — the flashable disk image, booted the way a mini-PC boots it: qemu with UEFI firmware
# (OVMF), systemd-boot, the UKI. Checks the serial console and the web UI through the port
# forwarded to localhost, exactly what `make run-vm` gives a user; then the VPN on the
# Debian kernel's own WireGuard: two client namespaces on this host, configured only from
# .conf files downloaded through the REST API and brought up with stock wg-quick
# (wireguard-go), dial the cell through qemu's forwarded UDP port; the one with internet
# exit reaches a listener beyond the cell (an address of this host, reached through qemu's
# user network), the one without does not.
#   tests/boot-vm.sh DISK.raw VERSION
set -euo pipefail
cd "$(dirname "$0")/.."

disk=${1:?usage: $0 DISK.raw VERSION}
version=${2:?usage: $0 DISK.raw VERSION}
port=${CELL_T3_PORT:-18080}
tls_port=${CELL_T3_TLS_PORT:-18443}
# The cell's LAN address on qemu's user network: the name its certificate carries. Every
# curl reaches it through the forwarded ports (connect-to, in the curlrc below).
lan=10.0.2.15
base=https://$lan
CELL_BASE=$base
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh
serial=$tmp/serial.log
console=$tmp/serial.sock
vm_pid=

show_serial() {
    echo "--- serial console (last 40 lines) ---"
    tail -n 40 "$serial" 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' || true
}
stop_vm() {
    if [ -n "$vm_pid" ]; then kill "$vm_pid" 2>/dev/null || true; wait "$vm_pid" 2>/dev/null || true; fi
}
on_failure show_serial
on_exit stop_vm

# --- the VPN's far side, ready before qemu binds the WireGuard port to it ---------------
require_root "boot-vm: needs root for the VPN clients' network namespaces"
for tool in wg-quick wireguard-go ip curl kdig; do require_tool "$tool" "boot-vm: missing $tool (make deps)"; done
id=$$
clients=(vmc1ns$id vmc2ns$id)
devices=(vmx$id vmn$id)          # at most 15 characters; wireguard-go's sockets are shared
endpoint=10.98.1.1                # the host's side of client 1's link; qemu listens here
internet=198.51.100.7             # a "public" address of this host, beyond the cell
internet_port=18099
vpn_down() {
    local i
    for i in 0 1; do
        ip netns exec "${clients[$i]}" wg-quick down "$tmp/${devices[$i]}.conf" >/dev/null 2>&1 || true
        pkill -f "wireguard-go ${devices[$i]}" 2>/dev/null || true
        rm -f "/var/run/wireguard/${devices[$i]}.sock"
        ip netns del "${clients[$i]}" 2>/dev/null || true
    done
    ip addr del "$internet/32" dev lo 2>/dev/null || true
    [ -z "${internet_pid:-}" ] || kill "$internet_pid" 2>/dev/null || true
}
on_exit vpn_down
for i in 0 1; do
    n=$((i + 1)) ns=${clients[$i]}
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "vmv$n-$id" type veth peer name eth0 netns "$ns"
    ip addr add "10.98.$n.1/30" dev "vmv$n-$id"
    ip link set "vmv$n-$id" up
    ip -n "$ns" addr add "10.98.$n.2/30" dev eth0
    ip -n "$ns" link set eth0 up
    # Only the way to the endpoint: everything else must go through the tunnel or nowhere.
    [ "$n" = 1 ] || ip -n "$ns" route add "$endpoint/32" via "10.98.$n.1"
done
ip addr add "$internet/32" dev lo
python3 -m http.server "$internet_port" --bind "$internet" --directory "$tmp" >/dev/null 2>&1 &
internet_pid=$!

echo "# booting $disk in qemu (TCG, OVMF); this takes a few minutes"
started=$(date +%s)
CELL_VM_LOG=$serial CELL_VM_SERIAL=$console CELL_VM_PORT=$port CELL_VM_TLS_PORT=$tls_port \
    CELL_VM_WG=$endpoint:51820 scripts/run-vm "$disk" --headless &
vm_pid=$!

# Software emulation is slow and CI machines vary: allow 15 minutes before calling it dead.
code=$(wait_for_url "http://127.0.0.1:$port/ca.pem" 900 "$vm_pid") || true
echo "# web UI answered after $(( $(date +%s) - started )) s"
check "the root certificate downloads over the forwarded HTTP port (got $code)" [ "$code" = 200 ]
trust_vm_root() {
    trust_cell_root "http://127.0.0.1:$port" \
        "connect-to = \"$lan:443:127.0.0.1:$tls_port\"" "connect-to = \"$lan:80:127.0.0.1:$port\""
}
check "and curl trusts it alone from now on" trust_vm_root
# The certificate names the LAN address once the DHCP lease is in (seconds after start).
code=$(wait_for_url "$base/health" 120 "$vm_pid") || true
check "/health answers 200 over HTTPS through the forwarded port (got $code)" [ "$code" = 200 ]
check "/health reports the image's version" grep -qF "\"version\":\"$version\"" "$answer"
location=$(curl -s -o /dev/null -w '%{redirect_url}' --max-time 5 "$base/")
check "/ redirects to /setup (got '$location')" [ "$location" = "$base/setup" ]
check "/setup shows the image's version" \
    bash -c "curl -s --max-time 5 '$base/setup' | grep -qF '<dd id=\"version\">$version</dd>'"

# The serial console: firmware handed over to the kernel through UEFI, and the kernel was
# told to talk on ttyS0 and tty0.
for _ in $(seq 60); do grep -q 'Choice: ' "$serial" && break; sleep 1; done
check "booted through UEFI firmware" grep -qaE 'efi: EFI v[0-9.]+ by EDK II' "$serial"
check "kernel command line has console=tty0 and console=ttyS0" \
    grep -qaE 'Command line:.*console=tty0.*console=ttyS0' "$serial"
check "the serial console shows the recovery console" grep -qa 'recovery console' "$serial"
check "the serial console shows the one-time setup code" \
    grep -qaE 'Setup code: [A-Z2-9]{4}-[A-Z2-9]{4}' "$serial"
root_print=$(fingerprint_of "$cell_root")
check "and the fingerprint of the root certificate served over HTTP ($root_print)" \
    bash -c 'grep -qaF "Root certificate (SHA-256): ${1:0:47}" "$2" && grep -qaF "${1:48}" "$2"' _ "$root_print" "$serial"

# The recovery console over the serial port: an administrator's password reset, then a
# factory reset that brings back the setup wizard.
expect() { tests/lib/serial-expect.py "$console" --timeout 120 "$@"; }
# in_vm WHAT COMMANDS: runs COMMANDS in the recovery console's root shell and prints what
# they wrote to the serial port (a diagnosis after a failed check; no check itself). The
# quotes split the marks so that the shell's echo of the typed line does not match them.
in_vm() {
    local mark=diag$RANDOM
    echo "--- $1, from the VM's root shell ---"
    expect 'send:\r' 'expect:Choice: ' 'send:6\r' 'expect:type this code: ([0-9]{6})' 'send-group:\r' \
        'expect:Root shell; type' "send:echo ${mark}-be''gin; { $2; } 2>&1; echo ${mark}-e''nd; exit\r" \
        "expect:${mark}-end" >/dev/null || true
    sed 's/\x1b\[[0-9;]*[A-Za-z]//g; s/\r$//' "$serial" | sed -n "/^${mark}-begin/,/^${mark}-end/p"
}
code=$(grep -aoE 'Setup code: [A-Z2-9]{4}-[A-Z2-9]{4}' "$serial" | tail -n 1 | cut -d' ' -f3)
setup="{\"code\":\"$code\",\"cell_name\":\"home\",\"domain\":{\"mode\":\"internal\"},\"timezone\":\"UTC\",\"admin_username\":\"alice\",\"admin_password\":\"first long password\",\"services\":{}}"
check "the cell is set up over HTTPS with the code from the serial port" [ "$(api POST /api/v1/setup "$setup")" = 200 ]
check "the wizard's last page follows the reconciler" \
    bash -c "curl -s --max-time 60 '$base/setup/done' | grep -qF 'id=\"setup-progress\"'"

# --- the VPN on the booted cell --------------------------------------------------------
check "alice logs in" api_login alice "first long password"
# Hashing, fsyncs and the first reconcile pass are slow under emulation: wait on the state.
check "the reconciler applies the setup (every applier ok at the generation in force)" \
    wait_until 300 settled /api/v1/status
check "the VPN endpoint is set to the address qemu forwards" \
    [ "$(api PUT /api/v1/vpn "{\"subnet4\":\"10.87.0.0/20\",\"listen_port\":51820,\"endpoint\":\"$endpoint\"}")" = 200 ]
check "a device with internet exit is added" \
    [ "$(api POST /api/v1/vpn/peers '{"name":"exit","internet_exit":true,"keepalive":5}')" = 201 ]
check "a device without is added" \
    [ "$(api POST /api/v1/vpn/peers '{"name":"noexit","keepalive":5}')" = 201 ]
names=(exit noexit)
for i in 0 1; do
    check "the .conf of ${names[$i]} downloads through the REST API" \
        [ "$(api GET "/api/v1/vpn/peers/${names[$i]}/config")" = 200 ]
    check "the .conf of ${names[$i]} names the cell's DNS server and zone" \
        grep -qE '^DNS = 10\.87\.0\.1, [0-9a-f:]+, home\.cell$' "$answer"
    # wg-quick hands the DNS line to resolvconf, which would rewrite this host's
    # resolv.conf: the test asks the cell's DNS server through the tunnel itself instead.
    grep -v '^DNS = ' "$answer" >"$tmp/${devices[$i]}.conf"
done
# Runs a command with its output in $tmp/vpn.log (shown when the test fails).
quietly() { "$@" >>"$tmp/vpn.log" 2>&1; }
show_vpn_log() { echo "--- VPN clients (last 30 lines) ---"; tail -n 30 "$tmp/vpn.log" 2>/dev/null || true; }
on_failure show_vpn_log
kernel_device() {
    settled /api/v1/status && [ "$(api GET /api/v1/vpn)" = 200 ] && [ "$(field 'v["backend"]')" = kernel ]
}
check "the kernel's WireGuard runs the device, and every applier is ok" wait_until 120 kernel_device
for i in 0 1; do
    check "wg-quick brings ${names[$i]} up from its .conf alone" \
        quietly ip netns exec "${clients[$i]}" env WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go \
        wg-quick up "$tmp/${devices[$i]}.conf"
done
handshakes() {
    [ "$(api GET /api/v1/vpn/peers)" = 200 ] \
        && [ "$(field 'sum(1 for p in v if p["live"] and p["live"]["last_handshake"])')" = 2 ]
}
check "both devices complete their handshake with the cell through the forwarded port" \
    wait_until 120 handshakes
for i in 0 1; do
    check "${names[$i]} reaches the cell through the tunnel" \
        wait_until 30 quietly ip netns exec "${clients[$i]}" ping -c 1 -W 2 10.87.0.1
done
vpn_name() { [ "$(ip netns exec "${clients[1]}" kdig +time=2 +retry=0 +short @10.87.0.1 home.cell A 2>/dev/null)" = 10.87.0.1 ]; }
check "through its tunnel a device resolves home.cell to the cell's VPN address (cell-dns)" wait_until 20 vpn_name
# In the VM chrony controls the clock (no -x, unlike nspawn): the path a real cell takes.
vpn_time() { ip netns exec "${clients[1]}" python3 tests/lib/ntp-query.py 10.87.0.1 2 >"$tmp/ntp.txt" 2>&1; }
check "through its tunnel a device gets the time from the cell (chrony: $(wait_until 30 vpn_time; cat "$tmp/ntp.txt"))" \
    grep -qE '^[0-9]+ -?[0-9.]+ [0-2]$' "$tmp/ntp.txt"
grep -qE '^[0-9]+ -?[0-9.]+ [0-2]$' "$tmp/ntp.txt" || in_vm "cell-ntp's state" \
    'systemctl status --no-pager cell-ntp; ss -ulpn; cat /run/cell-chrony/chrony.conf; chronyc -n -h 127.0.0.1 serverstats; chronyc -n -h 127.0.0.1 tracking; journalctl -b --no-pager -u cell-ntp | tail -n 20; nft list chain inet cell input'
reach_internet() { ip netns exec "$1" curl -s -o /dev/null --max-time 10 "http://$internet:$internet_port/"; }
check "the device with internet exit reaches $internet beyond the cell" wait_until 10 reach_internet "${clients[0]}"
# The other device is routed there through its tunnel by hand: the cell must drop it.
server_key=$(sed -n 's/^PublicKey = //p' "$tmp/${devices[1]}.conf")
allowed=$(ip netns exec "${clients[1]}" wg show "${devices[1]}" allowed-ips | cut -f2 | tr ' ' ',')
ip netns exec "${clients[1]}" wg set "${devices[1]}" peer "$server_key" allowed-ips "$allowed,$internet/32"
ip netns exec "${clients[1]}" ip route add "$internet/32" dev "${devices[1]}"
check "the device without internet exit does not (the cell's firewall drops it)" \
    bash -c "! ip netns exec '${clients[1]}' curl -s -o /dev/null --max-time 10 'http://$internet:$internet_port/'"
check "the status shows every applier ok" settled /api/v1/status
check "the recovery console resets alice's password" expect \
    'send:\r' 'expect:Choice: ' 'send:2\r' 'expect:Whose password\? ' 'send:alice\r' \
    'expect:New password: ' 'send:second long password\r' 'expect:The same again: ' \
    'send:second long password\r' "expect:Type 'yes'" 'send:yes\r' 'expect:Done: set through celld'
check "and the session alice had open in her browser ended at once" [ "$(api GET /api/v1/session)" = 401 ]
check "alice logs in with the new password" \
    [ "$(api POST /api/v1/session '{"username":"alice","password":"second long password"}')" = 200 ]
check "and no longer with the old one" \
    [ "$(api POST /api/v1/session '{"username":"alice","password":"first long password"}')" = 401 ]
# The disk as the A/B layout made it, looked at from the recovery console's root shell.
escaped_version=${version//./\\.}
check "the recovery shell opens with the presence code, and shows the A/B layout and the factory /etc" expect \
    'send:\r' 'expect:Choice: ' 'send:6\r' 'expect:type this code: ([0-9]{6})' 'send-group:\r' \
    'expect:Root shell; type' \
    'send:echo USR=$(findmnt -no SOURCE /usr) FS=$(findmnt -no FSTYPE /usr); echo SLOTS=$(lsblk -rno PARTLABEL | tr "\n" " "); echo ROOT=$(findmnt -no FSTYPE /); echo ETC=$(test -s /etc/ssl/certs/ca-certificates.crt && test -e /etc/nsswitch.conf && echo from-factory); exit\r' \
    'expect:USR=/dev/mapper/usr FS=erofs' "expect:SLOTS=[^$]*cell_${escaped_version}[^$]*_empty" 'expect:ROOT=ext4' \
    'expect:ETC=from-factory'
check "after boot-complete the version is blessed (no tries left in the UKI's name)" expect \
    'send:\r' 'expect:Choice: ' 'send:6\r' 'expect:type this code: ([0-9]{6})' 'send-group:\r' 'expect:Root shell; type' \
    'send:sleep 2; echo UKI=$(ls /efi/EFI/Linux /boot/EFI/Linux 2>/dev/null | grep cell_); exit\r' \
    "expect:UKI=cell_${escaped_version}\\.efi"
check "the recovery console starts a factory reset" expect \
    'send:\r' 'expect:Choice: ' 'send:5\r' "expect:Type 'erase'" 'send:erase\r' 'expect:Done: restarting to erase'
# The reset wipes the state, the root's key with it: the cell comes back with a new root.
at_wizard() { trust_vm_root && [ "$(api GET /api/v1/setup)" = 200 ] && grep -q '"setup_complete":false' "$answer"; }
check "after the factory reset the cell is back at the setup wizard" wait_until 600 at_wizard
check "with a new root certificate (the old root's key went with the state)" \
    [ "$(fingerprint_of "$cell_root")" != "$root_print" ]
# The console prints its menu once celld answers, which can be a moment after cell-web does.
new_code_shown() {
    [ "$(grep -aoE 'Setup code: [A-Z2-9]{4}-[A-Z2-9]{4}' "$serial" | tail -n 1 | cut -d' ' -f3)" != "$code" ]
}
check "and the serial port shows a new setup code" wait_until 120 new_code_shown

finish "# all VM checks passed"
