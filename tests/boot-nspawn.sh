#!/usr/bin/env bash
# T2 — the built image, booted. Boots the image tree under systemd-nspawn with its own veth
# and checks it from outside, as a browser on the LAN would, and from inside, as the
# service manager sees it.
#   tests/boot-nspawn.sh TREE
set -euo pipefail
cd "$(dirname "$0")/.."

tree=${1:?usage: $0 IMAGE_TREE}
name=cell-t2
net=${CELL_T2_NET:-1}
nspawn=scripts/cell-nspawn
address=10.77.$net.2
base=https://$address
CELL_BASE=$base
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh
require_tool kdig "boot-nspawn: missing kdig (make deps)"
require_tool busybox "boot-nspawn: missing busybox (make deps)"

show_logs() {
    echo "--- container journal (last 60 lines) ---"
    $nspawn exec $name journalctl --no-pager -n 60 2>/dev/null || true
    echo "--- console ---"
    tail -n 30 /run/cell-nspawn/$name/console.log 2>/dev/null || true
}
stop_container() { $nspawn stop $name || true; }
on_exit stop_container
on_failure show_logs

# Units the service manager reports as failed, one per line; empty when none.
failed_units() { $nspawn exec $name systemctl list-units --failed --plain --no-legend --no-pager | awk '{print $1}'; }

image_version=$(sed -n 's/^IMAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$tree/usr/lib/os-release")
[ -n "$image_version" ] || { echo "no IMAGE_VERSION in $tree/usr/lib/os-release" >&2; exit 1; }
echo "# booting image $image_version"

require_root "booting the image needs root (systemd-nspawn, veth)"

$nspawn stop $name 2>/dev/null || true
$nspawn start "$tree" $name "$net"

# --- from outside, over the veth: HTTPS from first boot, with the cell's own root -------
root_code=$(wait_for_url "http://$address/ca.pem" 120) || true
check "the cell's root certificate downloads over plain HTTP (got $root_code)" [ "$root_code" = 200 ]
# From here on every curl of this test trusts that root and nothing else.
check "it is a certificate, and curl trusts it alone from now on" trust_cell_root "http://$address"
health_code=$(wait_for_url "$base/health" 30) || true
check "/health answers 200 over HTTPS (got $health_code)" [ "$health_code" = 200 ]
check "/health reports ok and the image's version" \
    grep -q "\"status\":\"ok\".*\"version\":\"$image_version\"" "$answer"

redirect=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 "http://$address/setup?x=1")
check "plain HTTP redirects to the same page over HTTPS ($redirect)" [ "$redirect" = "308 $base/setup?x=1" ]
tls_version() { curl -s -o /dev/null -w '%{http_code} %{http_version}' --max-time 5 "$@" "$base/health"; }
check "TLS 1.3 with HTTP/2 by ALPN" [ "$(tls_version --tlsv1.3 --http2)" = "200 2" ]
check "TLS 1.2 with HTTP/1.1" [ "$(tls_version --tlsv1.2 --tls-max 1.2 --http1.1)" = "200 1.1" ]
root_print=$(fingerprint_of "$cell_root")
api_root_print() { [ "$(api GET /api/v1/pki/root)" = 200 ] && [ "$(field 'v["fingerprint"]')" = "$root_print" ]; }
check "the API gives the same root fingerprint as the downloaded certificate ($root_print)" api_root_print
served_names=$(openssl s_client -connect "$address:443" -noservername </dev/null 2>/dev/null \
    | openssl x509 -noout -ext subjectAltName 2>/dev/null || true)
check "the served certificate carries the cell's LAN address ($(tr -d '\n' <<<"$served_names"))" \
    grep -qF "IP Address:$address" <<<"$served_names"

root_headers=$(curl -s -o /dev/null -D - --max-time 5 "$base/")
check "/ redirects" grep -qE '^HTTP/[0-9.]+ 30[1237]' <<<"$root_headers"
check "/ redirects to /setup" grep -qi '^location: /setup' <<<"$root_headers"

setup_code=$(curl -s -o "$tmp/setup.html" -w '%{http_code}' --max-time 5 "$base/setup")
check "/setup answers 200 (got $setup_code)" [ "$setup_code" = 200 ]
check "/setup shows the image's version" grep -qF "<dd id=\"version\">$image_version</dd>" "$tmp/setup.html"
check "/setup shows the hostname celld reports" grep -qF '<dd id="hostname">cell</dd>' "$tmp/setup.html"
check "/setup needs no JavaScript" bash -c "! grep -qi '<script' '$tmp/setup.html'"
check "/setup shows the root certificate's fingerprint to compare with the console's" \
    grep -qF "<dd id=\"root-fingerprint\"><code>$root_print</code></dd>" "$tmp/setup.html"

check "the celld socket is not reachable from the network" \
    bash -c "! curl -s --max-time 2 -o /dev/null '$base/v1/status' -w '%{http_code}' | grep -q 200"

# --- from inside: the service manager's view -------------------------------------------
state=$($nspawn exec $name systemctl is-system-running --wait 2>/dev/null || true)
failed=$(failed_units)
check "boot finished with no failed unit (state '$state'; failed: ${failed:-none})" \
    [ "$state" = running -a -z "$failed" ]
for unit in celld.service cell-web.service; do
    check "$unit is active" [ "$($nspawn exec $name systemctl is-active $unit)" = active ]
done

web_pid=$($nspawn exec $name systemctl show -P MainPID cell-web.service)
web_status=$($nspawn exec $name cat /proc/"$web_pid"/status)
check "cell-web runs as an unprivileged user" \
    bash -c "grep -E '^Uid:' <<<'$web_status' | awk '{exit !(\$2 != 0 && \$3 != 0)}'"
# CAP_NET_BIND_SERVICE is capability 10: effective set 0x400 and nothing else.
check "cell-web holds only CAP_NET_BIND_SERVICE" grep -qE '^CapEff:\s+0000000000000400$' <<<"$web_status"
socket_mode=$($nspawn exec $name stat -c '%a %U %G' /run/cell/celld.sock)
check "celld's socket is root:cell, mode 660 (got '$socket_mode')" [ "$socket_mode" = "660 root cell" ]

# The failure check itself must be able to fail: a unit that fails is reported.
$nspawn exec $name systemd-run --quiet --unit=cell-t2-canary --wait /bin/false >/dev/null 2>&1 || true
check "a failing unit is detected by the failed-unit check" grep -qx 'cell-t2-canary.service' <<<"$(failed_units)"
$nspawn exec $name systemctl reset-failed cell-t2-canary.service

# Health reflects celld: stopping it turns /health into 503, starting it brings back 200.
$nspawn exec $name systemctl stop celld.service
down_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$base/health")
check "/health is 503 while celld is stopped (got $down_code)" [ "$down_code" = 503 ]
$nspawn exec $name systemctl start celld.service
up_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$base/health")
check "/health is 200 again once celld is back (got $up_code)" [ "$up_code" = 200 ]

# --- claiming the cell: setup code on the console, the wizard over HTTP ------------------
code=$($nspawn exec $name cellctl setup-code | sed -n 's/^Setup code: //p')
check "cellctl setup-code prints a code (got '$code')" grep -qE '^[A-Z2-9]{4}-[A-Z2-9]{4}$' <<<"$code"
# agetty shows /run/issue.d on tty1 and ttyS0 (nspawn's piped console runs no getty; the
# VM test reads the code off the real serial port).
check "the console banner carries the setup code" \
    bash -c "$nspawn exec $name cat /run/issue.d/50-cell.issue | grep -q 'Setup code: $code'"
# mDNS, asked from the host side of the veth the way a laptop on the LAN asks.
ip route replace 224.0.0.251/32 dev ve-$name
mdns() { python3 tests/lib/mdns-query.py 10.77.$net.1 "$1" "${2:-5}"; }
mdns_silent() { ! mdns "$1" 3 >/dev/null; }
check "before setup the cell answers cell.local by mDNS" [ "$(mdns cell.local)" = "$address" ]
api_code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/status")
check "before setup the API answers 428 (got $api_code)" [ "$api_code" = 428 ]
forward_guarded() { $nspawn exec $name nft list chain inet cell forward 2>/dev/null | grep -q 'policy drop'; }
check "before setup the firewall already guards forwarding (forward chain drops by default)" \
    wait_until 30 forward_guarded
setup_json() {
    printf '{"code":"%s","cell_name":"home","domain":{"mode":"internal"},"timezone":"Europe/Berlin","admin_username":"alice","admin_password":"correct horse battery","services":{"calendar":true}}' "$1"
}
wrong=$(curl -s -w ' %{http_code}' -H 'content-type: application/json' -d "$(setup_json AAAA-AAAA)" "$base/api/v1/setup")
check "a wrong setup code is refused naming the field ($wrong)" grep -q '"field":"code".* 400$' <<<"$wrong"
done_code=$(curl -s -o "$tmp/setup.json" -w '%{http_code}' -H 'content-type: application/json' -d "$(setup_json "$code")" "$base/api/v1/setup")
check "the wizard's setup call succeeds (got $done_code: $(cat "$tmp/setup.json"))" [ "$done_code" = 200 ]
# The setup call only stores; the reconciler applies it right after.
hostname_is() { [ "$($nspawn exec $name cat /proc/sys/kernel/hostname)" = "$1" ]; }
timezone_is() { $nspawn exec $name readlink /etc/localtime | grep -q "$1\$"; }
check "setup renamed the machine through hostnamed" wait_until 30 hostname_is home
check "setup set the time zone through timedated" wait_until 30 timezone_is Europe/Berlin
mdns_is() { [ "$(mdns "$1")" = "$address" ]; }
check "after setup it answers home.local by mDNS" wait_until 10 mdns_is home.local
check "and no longer cell.local" mdns_silent cell.local
check "the setup code is spent" bash -c "! $nspawn exec $name cellctl setup-code >/dev/null 2>&1"

api_login alice "correct horse battery" || true
check "alice logs in (got $login_code)" [ "$login_code" = 200 ]
check "her session cookie is Secure and HttpOnly" \
    bash -c "awk '\$6 == \"cell_session\" && \$1 ~ /^#HttpOnly_/ {print \$4}' '$jar' | grep -qx TRUE"
settings='{"identity":{"cell_name":"home","domain":{"mode":"internal"},"timezone":"America/New_York"},"services":{"calendar":true}}'
no_csrf=$(csrf='' api PUT /api/v1/settings "$settings")
check "a change without the CSRF token is refused (got $no_csrf)" [ "$no_csrf" = 403 ]
put_code=$(api PUT /api/v1/settings "$settings")
check "a settings change with the session and token succeeds (got $put_code)" [ "$put_code" = 200 ]
check "the new time zone is applied" wait_until 30 timezone_is America/New_York
check "the change is in the audit log" \
    bash -c "$nspawn exec $name cellctl audit list --action settings | grep -q 'identity.timezone: Europe/Berlin → America/New_York'"
curl -s -b "$jar" -o "$tmp/dashboard.html" "$base/"
for unit in celld.service cell-web.service systemd-networkd.service systemd-resolved.service; do
    check "the dashboard shows $unit active" \
        grep -qF "$unit — <span class=\"state\">active</span>" "$tmp/dashboard.html"
done
check "the dashboard shows what each applier applied" \
    bash -c 'for a in identity firewall wireguard addresses; do grep -q "id=\"applier-$a\"" "$1" || exit 1; done' _ "$tmp/dashboard.html"
identity_and_firewall_ok() {
    [ "$(api GET /api/v1/status)" = 200 ] \
        && [ "$(field '[a["ok"] for a in v["appliers"] if a["applier"] in ("identity", "firewall")]')" = "[True, True]" ]
}
check "the identity and the firewall are applied (WireGuard needs a kernel module this host lacks)" \
    wait_until 30 identity_and_firewall_ok
curl -s -o "$tmp/setup-done.html" "$base/setup/done"
check "the wizard's last page lists the appliers' progress" grep -q 'id="setup-progress"' "$tmp/setup-done.html"
check "the audit chain verifies" bash -c "$nspawn exec $name cellctl audit verify | grep -q '^intact'"

# --- units and logs: systemd's view of the cell's units, and their journal --------------
celld_unit_active() {
    [ "$(api GET /api/v1/units)" = 200 ] \
        && [ "$(field '[(u["active_state"], u["since"] is not None, u["restarts"]) for u in v if u["unit"] == "celld.service"]')" = "[('active', True, 0)]" ]
}
check "the units API shows celld active, since when, no restarts" celld_unit_active
check "and cell-dhcp (off until a DHCP server is set) inactive" \
    [ "$(field '[u["active_state"] for u in v if u["unit"] == "cell-dhcp.service"]')" = "['inactive']" ]
listening_logged() {
    [ "$(api GET '/api/v1/logs?unit=celld.service&text=CELLD+LISTENING')" = 200 ] \
        && [ "$(field 'any("celld listening" in l["message"] and l["unit"] == "celld.service" for l in v["lines"])')" = True ]
}
check "celld's journal has its start, found by text in any case" listening_logged
log_cursor=$(field 'v["cursor"]')
check "a cursor to follow from comes with it" [ -n "$log_cursor" ] && [ "$log_cursor" != None ]
api_login alice "correct horse battery" || true
login_followed() {
    [ "$(api GET "/api/v1/logs?unit=celld.service&after=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$log_cursor")")" = 200 ] \
        && [ "$(field 'any("auth.login" in l["message"] for l in v["lines"]) and not any("celld listening" in l["message"] for l in v["lines"])')" = True ]
}
check "following from the cursor gives the lines that came after it (alice's new login)" wait_until 10 login_followed
warnings_only() {
    [ "$(api GET '/api/v1/logs?limit=1000')" = 200 ] || return 1
    local all; all=$(field 'len(v["lines"])')
    [ "$(field 'any(l["priority"] == 6 for l in v["lines"])')" = True ] || return 1
    [ "$(api GET '/api/v1/logs?priority=4&limit=1000')" = 200 ] \
        && [ "$(field 'all(l["priority"] <= 4 for l in v["lines"])')" = True ] \
        && [ "$(field 'len(v["lines"])')" -lt "$all" ]
}
check "a priority filter leaves only warnings and worse (info lines gone)" warnings_only
check "cellctl logs prints celld's journal" \
    bash -c "$nspawn exec $name cellctl logs -u celld -g listening -n 5 | grep -q 'celld.service .*celld listening'"
check "cellctl units lists cell-web active" \
    bash -c "$nspawn exec $name cellctl units | grep -qE '^cell-web.service +active'"
curl -s -b "$jar" -o "$tmp/logs.html" "$base/logs?unit=cell-web.service"
check "the Logs page lists the units and cell-web's journal" \
    bash -c "grep -q '<code>cell-dns.service</code>' '$tmp/logs.html' && grep -q '<td>cell-web.service</td>' '$tmp/logs.html'"
check "settings survive in /var/lib/cell, owner-only" \
    [ "$($nspawn exec $name stat -c '%a %U' /var/lib/cell/settings.toml)" = "600 root" ]
# celld, sandboxed with only CAP_NET_ADMIN, writes the firewall once the cell is set up.
firewall_applied() { $nspawn exec $name nft list table inet cell >/dev/null 2>&1; }
wait_until 30 firewall_applied || true
rules=$($nspawn exec $name nft list table inet cell 2>/dev/null || true)
check "celld loaded the firewall table inet cell" grep -q "chain input" <<<"$rules"
check "the firewall drops by default and opens the web ports" \
    bash -c 'grep -q "policy drop" <<<"$1" && grep -q "tcp dport { 80, 443 } accept" <<<"$1"' _ "$rules"
check "the secret store is root-only and holds the server key" \
    [ "$($nspawn exec $name stat -c '%a %U' /var/lib/cell/secrets /var/lib/cell/secrets/wg-server.age | tr '\n' ' ')" = "700 root 600 root " ]
check "the cell reached cell-health.target (celld and cell-web answer)" \
    [ "$($nspawn exec $name systemctl is-active cell-health.target)" = active ]

# --- DNS: cell-dns answers on the cell's address from the zone celld renders --------------
check "cell-dns.service is active" [ "$($nspawn exec $name systemctl is-active cell-dns.service)" = active ]
dns_pid=$($nspawn exec $name systemctl show -P MainPID cell-dns.service)
dns_status=$($nspawn exec $name cat /proc/"$dns_pid"/status)
check "cell-dns runs as an unprivileged user with only CAP_NET_BIND_SERVICE" \
    bash -c "grep -E '^Uid:' <<<'$dns_status' | awk '{exit !(\$2 != 0 && \$3 != 0)}' && grep -qE '^CapEff:\s+0000000000000400$' <<<'$dns_status'"
check "cell-dns is not in group cell (celld's API is out of its reach)" \
    bash -c "! $nspawn exec $name id -nG cell-dns | tr ' ' '\n' | grep -qx cell"
check "the zone is root's, readable by group cell-dns only (got '$($nspawn exec $name stat -c '%a %U %G' /run/cell-dns/zone.json 2>&1)')" \
    [ "$($nspawn exec $name stat -c '%a %U %G' /run/cell-dns/zone.json)" = "640 root cell-dns" ]
soa_answered() { kdig +time=1 +retry=0 @"$address" home.cell SOA 2>&1 | grep -q 'status: NOERROR'; }
wait_until 10 soa_answered || true
soa=$(kdig +time=2 +retry=0 @"$address" home.cell SOA 2>&1 || true)
check "kdig from the LAN side: home.cell SOA, authoritative" \
    bash -c 'grep -q "status: NOERROR" <<<"$1" && grep -q "Flags: qr aa" <<<"$1"' _ "$soa"
check "calendar.home.cell is the cell's LAN address" \
    [ "$(kdig +time=2 +retry=0 +short @"$address" calendar.home.cell A)" = "$address" ]
check "over TCP too" [ "$(kdig +time=2 +retry=0 +tcp +short @"$address" home.cell A)" = "$address" ]
check "a disabled service has no name (files: NXDOMAIN)" \
    bash -c "kdig +time=2 +retry=0 @$address files.home.cell A 2>&1 | grep -q 'status: NXDOMAIN'"
$nspawn exec $name cellctl dns add printer A 192.168.1.9 >/dev/null
printer_answers() { [ "$(kdig +time=1 +retry=0 +short @"$address" printer.home.cell A 2>/dev/null)" = 192.168.1.9 ]; }
check "a record added with cellctl answers within 5 s" wait_until 5 printer_answers
check "cellctl dns list shows it" bash -c "$nspawn exec $name cellctl dns list | grep -qE '^printer +300 A +192.168.1.9'"

# --- NTP: chrony, configured by celld, serves the LAN -----------------------------------
ntp_running() { [ "$($nspawn exec $name systemctl is-active cell-ntp.service)" = active ]; }
check "celld started cell-ntp.service (chrony) with the configuration it rendered" wait_until 30 ntp_running
check "chrony serves the LAN's network and the VPN's, nothing else" \
    bash -c "$nspawn exec $name cat /run/cell-chrony/chrony.conf | grep -qx 'allow 10.77.$net.0/24' && $nspawn exec $name cat /run/cell-chrony/chrony.conf | grep -qx 'allow 10.87.0.0/20'"
ntp_answer() { python3 tests/lib/ntp-query.py "$address" 2 >"$tmp/ntp.txt" 2>&1; }
check "an NTP client on the LAN side gets the time ($(wait_until 20 ntp_answer; cat "$tmp/ntp.txt"): stratum, offset ms, leap)" \
    grep -qE '^[0-9]+ -?[0-9.]+ [0-2]$' "$tmp/ntp.txt"
ntp_state() { [ "$(api GET /api/v1/ntp)" = 200 ] && [ "$(field 'v["sync"]["stratum"] if v["sync"] else "none"')" != none ]; }
check "the API shows chrony's state (its stratum)" wait_until 20 ntp_state

# --- the LAN: a static address (the one cell-nspawn gives host0) and the DHCP server ---
host_mac=$(cat /sys/class/net/ve-$name/address)
lan="{\"addressing\":{\"mode\":\"static\",\"address\":\"$address/24\",\"gateway\":\"10.77.$net.1\"},
  \"dhcp_server\":{\"enabled\":true,\"pool_start\":\"10.77.$net.100\",\"pool_size\":20,\"lease_seconds\":600,
  \"reservations\":[{\"mac\":\"$host_mac\",\"address\":\"10.77.$net.20\",\"name\":\"hostside\"}]}}"
check "a static LAN address with the DHCP server on waits for confirmation (202)" [ "$(api PUT /api/v1/lan "$lan")" = 202 ]
lan_generation=$(field 'v["pending_change"]["generation"]')
check "and is confirmed" [ "$(api POST /api/v1/changes/confirm "{\"generation\":$lan_generation}")" = 200 ]
dhcp_running() { [ "$($nspawn exec $name systemctl is-active cell-dhcp.service)" = active ]; }
check "celld started cell-dhcp.service (dnsmasq)" wait_until 30 dhcp_running
# busybox udhcpc on the host's end of the veth, as a LAN client: it records what it is
# offered and leaves the interface as it is.
dhcp_offer() {
    UDHCPC_RECORD=$tmp/lease busybox udhcpc -i "ve-$name" -f -q -n -t 5 -T 1 \
        -s tests/lib/udhcpc-record.sh >>"$tmp/udhcpc.log" 2>&1
}
check "a client on the LAN side gets a lease" wait_until 30 dhcp_offer
check "with its reserved address, the cell as DNS and NTP server ($(tr '\n' ' ' <"$tmp/lease" 2>/dev/null))" \
    bash -c "grep -qx 'ip=10.77.$net.20' '$tmp/lease' && grep -qx 'dns=$address' '$tmp/lease' && grep -qx 'ntpsrv=$address' '$tmp/lease'"
hostside() { [ "$(kdig +time=1 +retry=0 +short @"$address" hostside.home.cell A 2>/dev/null)" = "10.77.$net.20" ]; }
check "and its reserved name resolves in the cell's zone" wait_until 10 hostside
lease_listed() { [ "$(api GET /api/v1/lan)" = 200 ] && grep -q "\"10.77.$net.20\"" "$answer"; }
check "the lease is listed by the API" wait_until 10 lease_listed

# --- sessions live in celld: they outlast restarts and end with a reset ------------------
session_alive() { [ "$(api GET /api/v1/session)" = 200 ]; }
$nspawn exec $name systemctl restart cell-web.service
check "alice's session survives a restart of cell-web" wait_until 30 session_alive
$nspawn exec $name systemctl restart celld.service
check "and a restart of celld" wait_until 30 session_alive
check "the sessions file is root's alone and holds no token" \
    [ "$($nspawn exec $name stat -c '%a %U' /var/lib/cell/sessions.json)" = "600 root" ]
check "the console banner (with the setup code, before setup) is root's alone" \
    [ "$($nspawn exec $name stat -Lc '%a %U' /run/issue.d/50-cell.issue)" = "600 root" ]
printf 'a brand new password\n' | $nspawn exec $name cellctl users reset-password alice >/dev/null
check "cellctl users reset-password ends alice's session at once" [ "$(api GET /api/v1/session)" = 401 ]
check "she logs in with the new password" api_login alice "a brand new password"
check "the audit chain still verifies, to its last entry" \
    bash -c "$nspawn exec $name cellctl audit verify | grep -q '^intact'"

failed=$(failed_units)
check "still no failed unit after setup (failed: ${failed:-none})" [ -z "$failed" ]

finish "# all booted-image checks passed"
