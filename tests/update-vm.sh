#!/usr/bin/env bash
# T3 — over-the-air updates, in qemu (UEFI, TCG) exactly as a cell in a home gets them:
#   1. v1 is set up (mail, calendar and files on) and given data: a VPN device, a file, a
#      calendar event and a contact stored through the DAV machine, a message sent and read
#      through the mail machine; a download with one flipped byte is refused and nothing
#      reaches the disk;
#   2. v2 is installed through the API, the cell reboots into it, data and settings kept
#      (the file, event and contact read back through v2's DAV machine, the message
#      through its mail machine);
#   3. v3 (its cell-web cannot start) is installed; its health check fails on every one of
#      its tries, systemd-boot goes back to v2 by itself, the UI reports the rollback,
#      v3 is never offered again and the machine stays up (no reboot loop);
#   4. the boot menu's recovery entry boots v2 into the recovery console only.
# The update server is a plain HTTP server on the host, serving what `cell-image publish`
# made (the guest reaches the host's loopback as 10.0.2.2).
#   tests/update-vm.sh DISK_V1 V1 UPDATE_DIR V2 V3 BAD_VERSION
# With CELL_BENCH_OUT set, the measured figures are appended to that file.
set -euo pipefail
cd "$(dirname "$0")/.."

disk=${1:?usage: $0 DISK_V1 V1 UPDATE_DIR V2 V3 BAD_VERSION}
v1=${2:?} updates=${3:?} v2=${4:?} v3=${5:?} bad=${6:?}
port=${CELL_T3_PORT:-18081}
tls_port=${CELL_T3_TLS_PORT:-18444}
http_port=${CELL_T3_HTTP_PORT:-18990}
submission_port=${CELL_T3_SUBMISSION_PORT:-18587}
imaps_port=${CELL_T3_IMAPS_PORT:-18993}
# The cell's LAN address on qemu's user network, reached through the forwarded ports.
lan=10.0.2.15
base=https://$lan
CELL_BASE=$base
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh
serial=$tmp/serial.log
console=$tmp/serial.sock
vm_pid=
http_pid=

show_serial() {
    echo "--- serial console (last 60 lines) ---"
    tail -n 60 "$serial" 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' || true
}
stop_vm() { [ -z "$vm_pid" ] || { kill "$vm_pid" 2>/dev/null || true; wait "$vm_pid" 2>/dev/null || true; }; }
stop_http() { [ -z "$http_pid" ] || kill "$http_pid" 2>/dev/null || true; }
on_failure show_serial
on_exit stop_http
on_exit stop_vm

# The published directory, with a copy of v2 under the name $bad whose usr file has one
# byte flipped after SHA256SUMS was signed.
server=$tmp/server
cp -r "$updates" "$server"
for file in "$server"/cell_"${v2}"[_.]*; do
    name=$(basename "$file")
    cp "$file" "$server/cell_${bad}${name#cell_"${v2}"}"
done
(cd "$server" && sha256sum cell_* | sed 's/ \*/  /' > SHA256SUMS \
    && gpg --homedir "$OLDPWD/build/keys/gnupg" --batch --yes --detach-sign --output SHA256SUMS.gpg SHA256SUMS) 2>/dev/null
bad_usr=$(ls "$server"/cell_"${bad}"_*.usr.raw.xz)
printf '\xff' | dd of="$bad_usr" bs=1 seek=$(( $(stat -c %s "$bad_usr") / 2 )) conv=notrunc status=none
python3 -m http.server "$http_port" --bind 127.0.0.1 --directory "$server" >"$tmp/http.log" 2>&1 &
http_pid=$!

echo "# booting $v1 in qemu (TCG, OVMF); this takes a few minutes"
CELL_VM_LOG=$serial CELL_VM_SERIAL=$console CELL_VM_PORT=$port CELL_VM_TLS_PORT=$tls_port \
    CELL_VM_SUBMISSION_PORT=$submission_port CELL_VM_IMAPS_PORT=$imaps_port \
    scripts/run-vm "$disk" --headless &
vm_pid=$!
# The cell's root (kept across updates and rollbacks) is trusted, and only it.
wait_for_url "http://127.0.0.1:$port/ca.pem" 900 "$vm_pid" >/dev/null || true
trust_cell_root "http://127.0.0.1:$port" \
    "connect-to = \"$lan:443:127.0.0.1:$tls_port\"" "connect-to = \"$lan:80:127.0.0.1:$port\"" \
    "connect-to = \"files.home.cell:443:127.0.0.1:$tls_port\"" \
    "connect-to = \"calendar.home.cell:443:127.0.0.1:$tls_port\"" \
    || die "the cell's root certificate did not download"

# Waits (up to $2 seconds) until /health answers with version $1.
wait_for_version() {
    local want=$1 limit=$2
    for _ in $(seq "$limit"); do
        if curl -fs -o "$tmp/health" --max-time 2 "$base/health" 2>/dev/null \
            && grep -qF "\"version\":\"$want\"" "$tmp/health"; then
            return 0
        fi
        kill -0 "$vm_pid" 2>/dev/null || return 1
        sleep 1
    done
    return 1
}
wait_for_version "$v1" 900 || die "v1 never answered on /health"
pass "v1 ($v1) is up"

login() { api_login alice "first long password"; }
# The time of the last job's result (the guest's clock), to tell the next one from it.
last_at() { api GET /api/v1/update >/dev/null; field '(v["last_result"] or {}).get("at","")'; }
# Waits for the update job to finish (a result newer than $1); prints its outcome.
wait_for_job() {
    for _ in $(seq 600); do
        api GET /api/v1/update >/dev/null
        if [ "$(field 'v["job"] is None')" = True ] && [ "$(field '(v["last_result"] or {}).get("at","") != sys.argv[2]' "$1")" = True ]; then
            field 'v["last_result"]["outcome"]'
            return 0
        fi
        sleep 1
    done
    echo timeout
}
shell() { # runs one command line in the recovery console's root shell, then expects
    tests/lib/serial-expect.py "$console" --timeout 120 \
        'send:\r' 'expect:Choice: ' 'send:6\r' 'expect:type this code: ([0-9]{6})' 'send-group:\r' \
        'expect:Root shell; type' "send:$1; exit\\r" "${@:2}"
}

code=$(grep -aoE 'Setup code: [A-Z2-9]{4}-[A-Z2-9]{4}' "$serial" | tail -n 1 | cut -d' ' -f3)
setup="{\"code\":\"$code\",\"cell_name\":\"home\",\"domain\":{\"mode\":\"internal\"},\"timezone\":\"UTC\",\"admin_username\":\"alice\",\"admin_password\":\"first long password\",\"services\":{\"mail\":true,\"calendar\":true,\"files\":true}}"
check "v1 is set up with the code from the serial port" [ "$(api POST /api/v1/setup "$setup")" = 200 ]
login || die "alice cannot log in"
check "a VPN device is added (data that must survive updates)" \
    [ "$(api POST /api/v1/vpn/peers '{"name":"laptop"}')" = 201 ]
check "alice makes an app password for her laptop" \
    [ "$(api POST /api/v1/users/alice/app-passwords '{"name":"laptop"}')" = 201 ]
app=$(field 'v["password"]')
echo "kept across updates $(date +%s%N)" >"$tmp/note.txt"
printf 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//cell test//EN\r\nBEGIN:VEVENT\r\nUID:kept\r\nDTSTAMP:20261203T120000Z\r\nDTSTART:20261224T180000Z\r\nSUMMARY:Kept across updates\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n' >"$tmp/kept.ics"
# put FILE URL [CURL_ARGS...]: stores FILE at URL as alice (the DAV machine starts after
# setup, Radicale last; under TCG that takes a while).
put() { [ "$(curl -s -o /dev/null -w '%{http_code}' -u "alice:$app" -T "$1" "${@:3}" "$2")" = 201 ]; }
# same FILE URL: URL answers FILE's bytes.
same() { curl -fs -o "$tmp/got" -u "alice:$app" "$2" && cmp -s "$1" "$tmp/got"; }
check "a file is stored in alice's files home (the DAV machine, from the erofs /usr)" \
    wait_until 300 put "$tmp/note.txt" https://files.home.cell/note.txt
check "and an event in her calendar" \
    wait_until 300 put "$tmp/kept.ics" https://calendar.home.cell/alice/calendar/kept.ics \
    -H 'Content-Type: text/calendar; charset=utf-8'
printf 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:kept\r\nFN:Kept Contact\r\nN:Contact;Kept;;;\r\nEND:VCARD\r\n' >"$tmp/kept.vcf"
check "and a contact in her address book" \
    wait_until 300 put "$tmp/kept.vcf" https://calendar.home.cell/alice/contacts/kept.vcf \
    -H 'Content-Type: text/vcard; charset=utf-8'
# A message to herself through the mail machine: submitted on 587 (STARTTLS, the cell's
# certificate checked), read back over IMAPS.
subject="kept-$(date +%s%N)"
mail_sent() {
    swaks --server 127.0.0.1 --port "$submission_port" --tls --tls-verify --tls-ca-path "$cell_root" \
        --tls-sni mail.home.cell --ehlo laptop.home.cell --auth PLAIN --auth-user alice \
        --auth-password "$app" --from alice@home.cell --to alice@home.cell \
        --header "Subject: $subject" --body "kept across updates" >"$tmp/swaks.log" 2>&1
}
mail_kept() { imap_has 127.0.0.1 "$imaps_port" mail.home.cell alice "$app" "$subject"; }
check "and a message in her mailbox (the mail machine)" wait_until 300 mail_sent
check "which she reads over IMAPS" wait_until 120 mail_kept
check "the update server is set" [ "$(api PUT /api/v1/update "{\"url\":\"http://10.0.2.2:$http_port/\"}")" = 204 ]
ftp_refused() { [ "$(api PUT /api/v1/update '{"url":"ftp://x/"}')" = 400 ] && grep -q '"field":"url"' "$answer"; }
check "a URL that is not HTTP is refused naming the field" ftp_refused

started=$(last_at)
check "checking for updates is accepted" [ "$(api POST /api/v1/update/check)" = 202 ]
check "the check finds the published versions" [ "$(wait_for_job "$started")" = checked ]
api GET /api/v1/update >/dev/null
check "v3, v2 and the corrupted one are offered ($(field 'v["available"]'))" \
    [ "$(field '" ".join(v["available"])')" = "$v3 $v2 $bad" ]

# 1. One flipped byte: refused, nothing written (slot B still empty, no UKI, no cache).
started=$(last_at)
check "installing the corrupted version is accepted as a job" \
    [ "$(api POST /api/v1/update/install "{\"version\":\"$bad\"}")" = 202 ]
check "and it fails" [ "$(wait_for_job "$started")" = failed ]
api GET /api/v1/update >/dev/null
check "the failure says nothing was installed ($(field 'v["last_result"]["message"]'))" \
    grep -q 'nothing was installed' "$answer"
check "nothing is pending" [ "$(field 'v["pending"]')" = None ]
check "slot B is still empty, no UKI and no cached file for it" shell \
    "echo SLOTS=\$(lsblk -rno PARTLABEL | tr '\\n' ' ') UKIS=\$(ls /boot/EFI/Linux | tr '\\n' ' ') CACHE=\$(ls -A /var/cache/cell-update 2>/dev/null | wc -l)" \
    'expect:SLOTS=[^\r\n]*_empty _empty _empty' "expect:UKIS=cell_${v1//./\\.}\\.efi +CACHE=0"

# 2. v2, installed through the API; the download is excluded from the install time.
started=$(last_at)
check "installing v2 is accepted" [ "$(api POST /api/v1/update/install "{\"version\":\"$v2\"}")" = 202 ]
saw_progress=no
for _ in $(seq 60); do
    api GET /api/v1/update >/dev/null
    if [ "$(field 'v["job"] is not None and v["job"]["phase"] in ("downloading","installing")')" = True ]; then
        saw_progress=yes; break
    fi
    sleep 0.5
done
check "the job reports its phase and progress while it runs" [ "$saw_progress" = yes ]
check "v2 is installed" [ "$(wait_for_job "$started")" = installed ]
api GET /api/v1/update >/dev/null
check "v2 is pending until the reboot" [ "$(field 'v["pending"]')" = "$v2" ]
install_seconds=$(field 'round(v["last_result"]["install_seconds"], 1)')
download_seconds=$(field 'round(v["last_result"]["download_seconds"], 1)')
check "v2 went into slot B, and its UKI is on trial" shell \
    "echo SLOTS=\$(lsblk -rno PARTLABEL | tr '\\n' ' ') UKIS=\$(ls /boot/EFI/Linux | tr '\\n' ' ')" \
    "expect:SLOTS=[^\r\n]*cell_${v2//./\\.} cell_${v2//./\\.}_hash cell_${v2//./\\.}_sig" \
    "expect:UKIS=[^\r\n]*cell_${v2//./\\.}\\+3-0\\.efi"

check "a reboot is asked for" [ "$(api POST /api/v1/update/reboot '{}')" = 202 ]
reboot_started=$(date +%s)
for _ in $(seq 120); do curl -fs -o /dev/null --max-time 2 "$base/health" || break; sleep 1; done
check "v2 answers after the reboot" wait_for_version "$v2" 900
reboot_seconds=$(( $(date +%s) - reboot_started ))
echo "# reboot to the web UI of v2: ${reboot_seconds} s"
login || die "alice cannot log in on v2"
laptop_kept() { [ "$(api GET /api/v1/vpn/peers)" = 200 ] && grep -q '"laptop"' "$answer"; }
check "alice's password and the VPN device survived the update" laptop_kept
check "her file survived it, read back through v2's DAV machine" \
    wait_until 300 same "$tmp/note.txt" https://files.home.cell/note.txt
kept_event() { curl -fs -u "alice:$app" https://calendar.home.cell/alice/calendar/kept.ics | grep -q 'SUMMARY:Kept across updates'; }
check "and her calendar event" wait_until 300 kept_event
kept_contact() { curl -fs -u "alice:$app" https://calendar.home.cell/alice/contacts/kept.vcf | grep -q 'FN:Kept Contact'; }
check "and her contact" wait_until 300 kept_contact
check "and her mail, read through v2's mail machine" wait_until 300 mail_kept
# The last update job's outcome is $1 (leaves GET /api/v1/update in $answer).
outcome_is() {
    api GET /api/v1/update >/dev/null
    [ "$(field '(v["last_result"] or {}).get("outcome")')" = "$1" ]
}
check "once healthy and blessed, the update is reported done" wait_until 300 outcome_is updated
check "v2's UKI is blessed" shell "echo UKIS=\$(ls /boot/EFI/Linux | tr '\\n' ' ')" \
    "expect:UKIS=[^\r\n]*cell_${v2//./\\.}\\.efi"

# 3. v3 fails its health check: boot counting brings back v2. What was offered to v1 is
#    checked again on v2.
api GET /api/v1/update >/dev/null
check "after the update nothing is offered until the next check" [ "$(field 'v["available"]')" = "[]" ]
started=$(last_at)
check "checking again on v2 is accepted" [ "$(api POST /api/v1/update/check)" = 202 ]
check "the check finishes" [ "$(wait_for_job "$started")" = checked ]
api GET /api/v1/update >/dev/null
check "v3 is offered, and only v3 is newer than v2 ($(field 'v["available"]'))" \
    [ "$(field '" ".join(v["available"])')" = "$v3" ]
started=$(last_at)
check "installing v3 is accepted" [ "$(api POST /api/v1/update/install "{\"version\":\"$v3\"}")" = 202 ]
check "v3 is installed" [ "$(wait_for_job "$started")" = installed ]
check "a reboot into v3 is asked for" [ "$(api POST /api/v1/update/reboot '{}')" = 202 ]
for _ in $(seq 120); do curl -fs -o /dev/null --max-time 2 "$base/health" || break; sleep 1; done
echo "# v3 is on trial: three failed boots, then v2 again (this takes several minutes)"
check "after v3's tries, v2 answers again by itself" wait_for_version "$v2" 2400
check "v3 used up its three tries, and v2 is the blessed default" shell \
    "echo UKIS=\$(ls /boot/EFI/Linux | tr '\\n' ' ')" \
    "expect:UKIS=[^\r\n]*cell_${v2//./\\.}\\.efi cell_${v3//./\\.}\\+0-3\\.efi"
login || die "alice cannot log in after the rollback"
check "the UI reports the rolled-back update" wait_until 300 outcome_is rolled_back
check "v3 is listed as failed and no longer offered" \
    [ "$(field 'sys.argv[2] in v["failed"] and sys.argv[2] not in v["available"]' "$v3")" = True ]
check "installing v3 again is refused" [ "$(api POST /api/v1/update/install "{\"version\":\"$v3\"}")" = 409 ]
curl -s -b "$jar" -o "$tmp/update.html" "$base/update"
check "the Updates page shows the rollback" grep -q "did not pass its health check" "$tmp/update.html"
api GET /api/v1/status >/dev/null
uptime_before=$(field 'v["uptime_seconds"]')
sleep 60
api GET /api/v1/status >/dev/null
check "no reboot loop: v2 stays up" [ "$(field 'v["uptime_seconds"]')" -gt "$uptime_before" ]

# The boot menu's recovery entry: the running version, booted into the recovery console
# and nothing else.
check "the boot menu has a recovery entry for v2, chosen for the next boot" shell \
    "bootctl list --no-pager | grep -q 'recovery console ($v2)' && bootctl set-oneshot cell-recovery.conf && echo ONESHOT=\$((6*7)); systemctl reboot" \
    'expect:ONESHOT=42'
check "the recovery entry boots the console only" \
    tests/lib/serial-expect.py "$console" --timeout 600 \
    'expect:Command line:[^\r\n]*usrhash=[^\r\n]*systemd\.unit=cell-recovery\.target' 'expect:Choice: '
check "with celld and cell-web stopped, and back to v2 after a reboot from its shell" shell \
    "echo STATE=\$(systemctl is-active celld cell-web | tr '\\n' ' '); systemctl reboot" \
    'expect:STATE=inactive inactive'
check "v2 answers again" wait_for_version "$v2" 900

image_bytes=$(stat -c %s "$disk")
image_alloc=$(( $(stat -c %b "$disk") * $(stat -c %B "$disk") ))
download_bytes=$(cat "$updates"/cell_"${v2}"[_.]* | wc -c)
summary="update: install ${install_seconds} s (download ${download_seconds} s, excluded), reboot to UI ${reboot_seconds} s, download $((download_bytes / 1048576)) MiB vs image $((image_bytes / 1048576)) MiB raw / $((image_alloc / 1048576)) MiB allocated"
echo "# $summary"
[ -z "${CELL_BENCH_OUT:-}" ] || echo "$summary" >> "$CELL_BENCH_OUT"

finish "# all update checks passed"
