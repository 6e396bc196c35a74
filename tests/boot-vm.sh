#!/usr/bin/env bash
# T3 — the flashable disk image, booted the way a mini-PC boots it: qemu with UEFI firmware
# (OVMF), systemd-boot, the UKI. Checks the serial console and the web UI through the port
# forwarded to localhost, exactly what `make run-vm` gives a user.
#   tests/boot-vm.sh DISK.raw VERSION
set -euo pipefail
cd "$(dirname "$0")/.."

disk=${1:?usage: $0 DISK.raw VERSION}
version=${2:?usage: $0 DISK.raw VERSION}
port=${CELL_T3_PORT:-18080}
base=http://127.0.0.1:$port
tmp=$(mktemp -d)
serial=$tmp/serial.log
failures=0
vm_pid=

cleanup() {
    local rc=$?
    if [ -n "$vm_pid" ]; then kill "$vm_pid" 2>/dev/null || true; wait "$vm_pid" 2>/dev/null || true; fi
    if [ $rc -ne 0 ] || [ $failures -ne 0 ]; then
        echo "--- serial console (last 40 lines) ---"
        tail -n 40 "$serial" 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

pass() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

echo "# booting $disk in qemu (TCG, OVMF); this takes a few minutes"
started=$(date +%s)
CELL_VM_LOG=$serial CELL_VM_PORT=$port scripts/run-vm "$disk" --headless &
vm_pid=$!

code=000
# Software emulation is slow and CI machines vary: allow 15 minutes before calling it dead.
for _ in $(seq 900); do
    code=$(curl -s -o "$tmp/health" -w '%{http_code}' --max-time 2 "$base/health" || true)
    [ "$code" = 200 ] && break
    kill -0 "$vm_pid" 2>/dev/null || break
    sleep 1
done
echo "# web UI answered after $(( $(date +%s) - started )) s"
check "/health answers 200 through the forwarded port (got $code)" [ "$code" = 200 ]
check "/health reports the image's version" grep -qF "\"version\":\"$version\"" "$tmp/health"
location=$(curl -s -o /dev/null -w '%{redirect_url}' --max-time 5 "$base/")
check "/ redirects to /setup (got '$location')" [ "$location" = "$base/setup" ]
check "/setup shows the image's version" \
    bash -c "curl -s --max-time 5 '$base/setup' | grep -qF '<dd id=\"version\">$version</dd>'"

# The serial console: firmware handed over to the kernel through UEFI, and the kernel was
# told to talk on ttyS0 and tty0.
for _ in $(seq 60); do grep -q 'login:' "$serial" && break; sleep 1; done
check "booted through UEFI firmware" grep -qaE 'efi: EFI v[0-9.]+ by EDK II' "$serial"
check "kernel command line has console=tty0 and console=ttyS0" \
    grep -qaE 'Command line:.*console=tty0.*console=ttyS0' "$serial"
check "the serial console shows a login prompt" grep -qa 'cell login:' "$serial"
check "the serial console shows the one-time setup code" \
    grep -qaE 'Setup code: [A-Z2-9]{4}-[A-Z2-9]{4}' "$serial"

if [ $failures -ne 0 ]; then
    echo "# $failures check(s) failed"
    exit 1
fi
echo "# all VM checks passed"
