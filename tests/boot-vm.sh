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

echo "# booting $disk in qemu (TCG, OVMF); this takes a few minutes"
started=$(date +%s)
CELL_VM_LOG=$serial CELL_VM_SERIAL=$console CELL_VM_PORT=$port scripts/run-vm "$disk" --headless &
vm_pid=$!

# Software emulation is slow and CI machines vary: allow 15 minutes before calling it dead.
code=$(wait_for_url "$base/health" 900 "$vm_pid") || true
echo "# web UI answered after $(( $(date +%s) - started )) s"
check "/health answers 200 through the forwarded port (got $code)" [ "$code" = 200 ]
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

# The recovery console over the serial port: an administrator's password reset, then a
# factory reset that brings back the setup wizard.
expect() { tests/lib/serial-expect.py "$console" --timeout 120 "$@"; }
code=$(grep -aoE 'Setup code: [A-Z2-9]{4}-[A-Z2-9]{4}' "$serial" | tail -n 1 | cut -d' ' -f3)
setup="{\"code\":\"$code\",\"cell_name\":\"home\",\"domain\":{\"mode\":\"internal\"},\"timezone\":\"UTC\",\"admin_username\":\"alice\",\"admin_password\":\"first long password\",\"services\":{}}"
check "the cell is set up over HTTP with the code from the serial port" [ "$(api POST /api/v1/setup "$setup")" = 200 ]
check "the recovery console resets alice's password" expect \
    'send:\r' 'expect:Choice: ' 'send:2\r' 'expect:Whose password\? ' 'send:alice\r' \
    'expect:New password: ' 'send:second long password\r' 'expect:The same again: ' \
    'send:second long password\r' "expect:Type 'yes'" 'send:yes\r' 'expect:Done: set through celld'
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
at_wizard() { [ "$(api GET /api/v1/setup)" = 200 ] && grep -q '"setup_complete":false' "$answer"; }
check "after the factory reset the cell is back at the setup wizard" wait_until 600 at_wizard
check "and the serial port shows a new setup code" \
    [ "$(grep -aoE 'Setup code: [A-Z2-9]{4}-[A-Z2-9]{4}' "$serial" | tail -n 1 | cut -d' ' -f3)" != "$code" ]

finish "# all VM checks passed"
