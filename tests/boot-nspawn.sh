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
base=http://$address
failures=0
tmp=$(mktemp -d)

cleanup() {
    local rc=$?
    if [ $rc -ne 0 ] || [ $failures -ne 0 ]; then
        echo "--- container journal (last 60 lines) ---"
        $nspawn exec $name journalctl --no-pager -n 60 2>/dev/null || true
        echo "--- console ---"
        tail -n 30 /run/cell-nspawn/$name/console.log 2>/dev/null || true
    fi
    $nspawn stop $name || true
    rm -rf "$tmp"
}
trap cleanup EXIT

pass() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

# Units the service manager reports as failed, one per line; empty when none.
failed_units() { $nspawn exec $name systemctl list-units --failed --plain --no-legend --no-pager | awk '{print $1}'; }

image_version=$(sed -n 's/^IMAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$tree/usr/lib/os-release")
[ -n "$image_version" ] || { echo "no IMAGE_VERSION in $tree/usr/lib/os-release" >&2; exit 1; }
echo "# booting image $image_version"

[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP booting the image needs root (systemd-nspawn, veth)"; exit 0; }

$nspawn stop $name 2>/dev/null || true
$nspawn start "$tree" $name "$net"

# --- from outside, over the veth -------------------------------------------------------
health_code=000
for _ in $(seq 240); do
    health_code=$(curl -s -o "$tmp/health" -w '%{http_code}' --max-time 2 "$base/health" || true)
    [ "$health_code" = 200 ] && break
    sleep 0.5
done
check "/health answers 200 (got $health_code)" [ "$health_code" = 200 ]
check "/health reports ok and the image's version" \
    grep -q "\"status\":\"ok\".*\"version\":\"$image_version\"" "$tmp/health"

root_headers=$(curl -s -o /dev/null -D - --max-time 5 "$base/")
check "/ redirects" grep -qE '^HTTP/1.1 30[1237]' <<<"$root_headers"
check "/ redirects to /setup" grep -qi '^location: /setup' <<<"$root_headers"

setup_code=$(curl -s -o "$tmp/setup.html" -w '%{http_code}' --max-time 5 "$base/setup")
check "/setup answers 200 (got $setup_code)" [ "$setup_code" = 200 ]
check "/setup shows the image's version" grep -qF "<dd id=\"version\">$image_version</dd>" "$tmp/setup.html"
check "/setup shows the hostname celld reports" grep -qF '<dd id="hostname">cell</dd>' "$tmp/setup.html"
check "/setup needs no JavaScript" bash -c "! grep -qi '<script' '$tmp/setup.html'"

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

if [ $failures -ne 0 ]; then
    echo "# $failures check(s) failed"
    exit 1
fi
echo "# all booted-image checks passed"
