#!/usr/bin/env bash
# T2 — the DAV machine in the booted image: calendars, address books and files through
# the front door, and the Files page. Boots the image tree under systemd-nspawn, sets the cell up with
# calendar and files on, and checks it the way clients on the LAN see it: python3-caldav
# creates an event and a contact and reads them back, another user is refused them,
# litmus runs its basic, copymove, props and locks groups against files.<zone>, a 1 GiB
# upload succeeds and one past the quota gets 507 and leaves nothing behind. The DAV
# machine is a systemd-nspawn container inside the booted cell.
#   tests/dav-nspawn.sh TREE
set -euo pipefail
cd "$(dirname "$0")/.."

tree=${1:?usage: $0 IMAGE_TREE}
name=cell-dav
net=${CELL_DAV_NET:-7}
nspawn=scripts/cell-nspawn
address=10.77.$net.2
base=https://$address
CELL_BASE=$base
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh
require_root "booting the image needs root (systemd-nspawn, veth)"
require_tool litmus "dav-nspawn: missing litmus (make deps)"
/usr/bin/python3 -c 'import caldav' 2>/dev/null || _check_skip "dav-nspawn: missing python3-caldav (make deps)"

show_logs() {
    echo "--- celld's appliers ---"
    $nspawn exec $name cellctl status 2>/dev/null | tail -n 20 || true
    echo "--- the cell's journal, dav (last 80 lines) ---"
    $nspawn exec $name journalctl --no-pager -n 80 -u celld -u cell-web -u systemd-nspawn@dav -u 'cell-machine-reload@*' 2>/dev/null || true
    echo "--- the DAV machine's journal (last 60 lines) ---"
    $nspawn exec $name sh -c 'nsenter -t "$(machinectl show dav -p Leader --value)" -a journalctl --no-pager -n 60' 2>/dev/null || true
}
stop_container() { $nspawn stop $name || true; }
on_exit stop_container
on_failure show_logs

$nspawn stop $name 2>/dev/null || true
$nspawn start "$tree" $name "$net"
code=$(wait_for_url "http://$address/ca.pem" 120) || true
check "the cell answers (got $code)" [ "$code" = 200 ]
# Every curl below reaches the cell's address whatever name it asks for.
trust_cell_root "http://$address" "connect-to = \"::$address:\""
hosts="$address home.cell calendar.home.cell files.home.cell webdav.home.cell"
token=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')

# --- setup with calendar and files on; a second user; an app password each ---------------
setup_code=$($nspawn exec $name cellctl setup-code | sed -n 's/^Setup code: //p')
setup='{"code":"'$setup_code'","cell_name":"home","domain":{"mode":"internal"},"timezone":"UTC","admin_username":"alice","admin_password":"correct horse battery","services":{"calendar":true,"files":true}}'
check "setup with calendar and files on" [ "$(api POST /api/v1/setup "$setup")" = 200 ]
api_login alice "correct horse battery"
check "alice adds bob" [ "$(api POST /api/v1/users '{"name":"bob","role":"peer","password":"bobs own passphrase"}')" = 201 ]
check "alice makes an app password for her laptop" \
    [ "$(api POST /api/v1/users/alice/app-passwords '{"name":"laptop"}')" = 201 ]
alice_app=$(field 'v["password"]')
api_login bob "bobs own passphrase"
check "bob makes one for his phone" [ "$(api POST /api/v1/users/bob/app-passwords '{"name":"phone"}')" = 201 ]
bob_app=$(field 'v["password"]')
api_login alice "correct horse battery"

machine_up() { [ "$($nspawn exec $name systemctl is-active systemd-nspawn@dav.service)" = active ]; }
check "celld started the DAV machine" wait_until 60 machine_up
in_machine() { $nspawn exec $name sh -c 'exec nsenter -t "$(machinectl show dav -p Leader --value)" -a "$@"' _ "$@"; }
services_up() { in_machine systemctl is-active radicale.service lighttpd.service >/dev/null 2>&1; }
check "Radicale and lighttpd run in it" wait_until 60 services_up
machine_uid=$($nspawn exec $name sh -c 'stat -c %u /proc/"$(machinectl show dav -p Leader --value)"')
check "the machine's init runs in its own user range (uid $machine_uid on the cell)" [ "$machine_uid" = 1879113728 ]

# --- only the front door reaches the machine's ports ----------------------------------------
dav() { # dav USER PASSWORD METHOD URL [curl args...]: prints the HTTP code
    local user=$1 password=$2 method=$3 url=$4
    shift 4
    curl -s -o "$tmp/dav.out" -w '%{http_code}' --max-time 600 -u "$user:$password" -X "$method" "$@" "$url"
}
answering() { [ "$(dav alice "$alice_app" PROPFIND https://files.home.cell/ -H 'Depth: 0')" = 207 ]; }
check "files.home.cell answers alice's PROPFIND through the front door" wait_until 30 answering
cell_pid=$($nspawn leader $name)
# Root on the cell, in its network namespace, straight to the machine's port (-q: without
# the curlrc that sends every request to the cell's LAN address).
forged() { nsenter -t "$cell_pid" -n curl -q -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'X-Remote-User: alice' "http://127.0.0.1:$1/" || true; }
check "another process of the cell (root) cannot reach lighttpd with a forged identity" [ "$(forged 5233)" = 000 ]
check "nor Radicale" [ "$(forged 5232)" = 000 ]
check "no login: 401 with a challenge" [ "$(curl -s -o /dev/null -w '%{http_code}' https://files.home.cell/)" = 401 ]
check "a wrong password: 401" [ "$(dav alice wrong-password PROPFIND https://files.home.cell/ -H 'Depth: 0')" = 401 ]

# --- calendars and address books ----------------------------------------------------------
caldav() {
    with_hosts "$hosts" /usr/bin/python3 - "$cell_root" "$@" <<'PY'
import sys, uuid
import caldav, requests
root, action, user, password = sys.argv[1:5]
url = "https://calendar.home.cell/"
client = caldav.DAVClient(url, username=user, password=password, ssl_verify_cert=root)
auth = requests.auth.HTTPBasicAuth(user, password)
event_url = "https://calendar.home.cell/alice/calendar/check.ics"
card_url = "https://calendar.home.cell/alice/contacts/check.vcf"
if action == "write":
    calendar = [c for c in client.principal().calendars() if str(c.url).endswith("/calendar/")][0]
    calendar.save_event("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//cell test//EN
BEGIN:VEVENT
UID:check
DTSTAMP:20261203T120000Z
DTSTART:20261224T180000Z
DTEND:20261224T200000Z
SUMMARY:Dinner with the cell
END:VEVENT
END:VCALENDAR
""")
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:check\r\nFN:Bob Example\r\nN:Example;Bob;;;\r\nEMAIL:bob@home.cell\r\nEND:VCARD\r\n"
    answer = requests.put(card_url, data=card, auth=auth, verify=root,
                          headers={"Content-Type": "text/vcard; charset=utf-8"})
    sys.exit(0 if answer.status_code in (201, 204) else 1)
if action == "read":
    calendar = [c for c in client.principal().calendars() if str(c.url).endswith("/calendar/")][0]
    events = [e for e in calendar.events() if "Dinner with the cell" in e.data]
    card = requests.get(card_url, auth=auth, verify=root)
    print("events:", len(events), "card:", card.status_code)
    sys.exit(0 if len(events) == 1 and card.status_code == 200 and "Bob Example" in card.text else 1)
if action == "intrude":
    codes = [requests.get(u, auth=auth, verify=root).status_code for u in (event_url, card_url)]
    codes.append(requests.request("PROPFIND", "https://calendar.home.cell/alice/calendar/",
                                  auth=auth, verify=root, headers={"Depth": "1"}).status_code)
    print("another user got", codes)
    sys.exit(0 if all(c in (403, 404) for c in codes) else 1)
PY
}
check "python3-caldav: alice finds her calendar, creates an event and a contact" caldav write alice "$alice_app"
check "and reads both back" caldav read alice "$alice_app"
check "bob gets 403/404 on alice's event, contact and calendar" caldav intrude bob "$bob_app"

# --- files: litmus, a 1 GiB upload, the quota ---------------------------------------------
# litmus does not check the certificate (it accepts any); curl and caldav above do.
# It writes its debug.log and child.log where it runs: in $tmp.
run_litmus() {
    (cd "$tmp" && TESTS="basic copymove props locks" with_hosts "$hosts" litmus https://files.home.cell/ alice "$alice_app" >"$tmp/litmus.log" 2>&1) &&
        [ "$(grep -c '^<- summary for .* 0 failed' "$tmp/litmus.log")" = 4 ]
}
check "litmus (basic, copymove, props, locks) passes against files.home.cell" run_litmus
grep -E '^(<- summary|-> running)|FAIL' "$tmp/litmus.log" | sed 's/^/# /' || true

truncate -s 1G "$tmp/big"
check "a 1 GiB upload succeeds" [ "$(dav alice "$alice_app" PUT https://files.home.cell/big.bin -T "$tmp/big")" = 201 ]
size() { curl -s -o /dev/null -w '%{http_code} %header{content-length}' -u "alice:$alice_app" -I "https://files.home.cell/$1"; }
missing() { [ "$(curl -s -o /dev/null -w '%{http_code}' -u "alice:$alice_app" -I "https://files.home.cell/$1")" = 404 ]; }
check "and is all there" [ "$(size big.bin)" = "200 1073741824" ]
check "alice's files quota becomes 1100 MiB" [ "$(api PATCH /api/v1/users/alice '{"files_quota_mib":1100}')" = 200 ]
check "a quota of 0 is refused, naming the field" \
    bash -c '[ "$1" = 400 ] && grep -q files_quota_mib "$2"' _ "$(api PATCH /api/v1/users/alice '{"files_quota_mib":0}')" "$answer"
truncate -s 200M "$tmp/more"
check "an upload past the quota gets 507" [ "$(dav alice "$alice_app" PUT https://files.home.cell/more.bin -T "$tmp/more")" = 507 ]
check "and leaves nothing behind" missing more.bin
chunked() { head -c 200M /dev/zero | dav alice "$alice_app" PUT https://files.home.cell/streamed.bin -T - -H 'Transfer-Encoding: chunked'; }
check "a streamed upload (no length) past the quota gets 507 too" [ "$(chunked)" = 507 ]
check "and leaves nothing behind either" missing streamed.bin
check "a small one still fits" [ "$(dav alice "$alice_app" PUT https://files.home.cell/note.txt --data-binary 'hello')" = 201 ]
copy_to() { dav alice "$alice_app" COPY "https://files.home.cell/$1" -H "Destination: https://files.home.cell/$2"; }
check "a copy that would pass the quota gets 507" [ "$(copy_to big.bin big-copy.bin)" = 507 ]
check "and makes nothing" missing big-copy.bin
check "a copy that fits is made" [ "$(copy_to note.txt note-copy.txt)" = 201 ]

# --- the Files page: the same home in the browser ------------------------------------------
page() { curl -s -o "$answer" -w '%{http_code}' -b "$jar" -c "$jar" "$@"; }
check "alice's Files page lists her home" bash -c '[ "$1" = 200 ] && grep -q "big.bin" "$2" && grep -q " used" "$2"' _ "$(page "$base/files")" "$answer"
echo "written in the browser $token" >"$tmp/page.txt"
upload() { page -F "file=@$tmp/page.txt;filename=$1" "$base/files/upload?dir=%2F&csrf=$2"; }
check "an upload without the form's token is refused" [ "$(upload 'page note.txt' wrong)" = 403 ]
check "an upload from the page lands in her home" [ "$(upload 'page note.txt' "$csrf")" = 303 ]
fetched() { curl -s -u "alice:$alice_app" "https://files.home.cell/$1" | cmp -s - "$tmp/page.txt"; }
check "and WebDAV clients see it" fetched 'page%20note.txt'
form() { page --data-urlencode "csrf=$csrf" "${@:2}" "$base$1"; }
check "a new folder" [ "$(form /files/folder --data-urlencode dir=/ --data-urlencode name=docs)" = 303 ]
check "is there for WebDAV clients too" [ "$(dav alice "$alice_app" PROPFIND https://files.home.cell/docs/ -H 'Depth: 0')" = 207 ]
check "a name with a slash is refused" [ "$(form /files/folder --data-urlencode dir=/ --data-urlencode name=a/b)" = 400 ]
check "renaming the upload" [ "$(form /files/rename --data-urlencode 'path=/page note.txt' --data-urlencode name=renamed.txt)" = 303 ]
check "moves it" fetched renamed.txt
downloaded() { [ "$(page "$base/files/download?path=%2Frenamed.txt" -D "$tmp/headers")" = 200 ] && cmp -s "$answer" "$tmp/page.txt" && grep -qi "content-disposition: attachment" "$tmp/headers"; }
check "the page downloads it as an attachment" downloaded
check "deleting it" [ "$(form /files/delete --data-urlencode path=/renamed.txt)" = 303 ]
check "removes it" missing renamed.txt
truncate -s 100M "$tmp/page-big"
big_upload() { page -F "file=@$tmp/page-big;filename=page-big.bin" "$base/files/upload?dir=%2F&csrf=$csrf"; }
check "an upload from the page past the quota gets 507" [ "$(big_upload)" = 507 ]
check "and leaves nothing behind" missing page-big.bin

# --- state survives a restart of the machine; disabling is immediate ------------------------
check "restarting the DAV machine" $nspawn exec $name systemctl restart systemd-nspawn@dav.service
check "Radicale and lighttpd come back" wait_until 60 services_up
check "the event and the contact are still there" wait_until 30 caldav read alice "$alice_app"
check "and the files" [ "$(size big.bin)" = "200 1073741824" ]
event=$'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//cell test//EN\r\nBEGIN:VEVENT\r\nUID:bobs\r\nDTSTAMP:20261203T120000Z\r\nDTSTART:20261230T090000Z\r\nSUMMARY:Bob at the dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n'
card=$'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bobs\r\nFN:Carol Example\r\nN:Example;Carol;;;\r\nEND:VCARD\r\n'
check "bob stores a file" [ "$(dav bob "$bob_app" PUT https://files.home.cell/bobs-note.txt --data-binary "note-$token")" = 201 ]
check "an event" [ "$(dav bob "$bob_app" PUT https://calendar.home.cell/bob/calendar/bobs.ics --data-binary "$event" -H 'Content-Type: text/calendar')" = 201 ]
check "and a contact" [ "$(dav bob "$bob_app" PUT https://calendar.home.cell/bob/contacts/bobs.vcf --data-binary "$card" -H 'Content-Type: text/vcard')" = 201 ]
check "alice disables bob" [ "$(api PATCH /api/v1/users/bob '{"disabled":true}')" = 200 ]
refused_now() { [ "$(dav bob "$bob_app" PROPFIND https://files.home.cell/ -H 'Depth: 0' --max-time 1)" = 401 ]; }
check "bob is refused by files at once" refused_now
check "and by the calendar" [ "$(dav bob "$bob_app" PROPFIND https://calendar.home.cell/bob/ -H 'Depth: 0')" = 401 ]

# --- deleting a user after exporting their data -----------------------------------------
check "alice downloads bob's data through the front door" [ "$(api GET /api/v1/users/bob/export)" = 200 ]
exported() { grep -q "$2" <<<"$(tar -xOf "$answer" "$1")"; }
check "the archive holds his file" exported bob/files/bobs-note.txt "note-$token"
check "his calendar as one .ics" exported bob/calendars/calendar.ics "SUMMARY:Bob at the dentist"
check "and his address book as one .vcf" exported bob/contacts/contacts.vcf "FN:Carol Example"
check "alice deletes bob" [ "$(api DELETE /api/v1/users/bob)" = 204 ]
left() { $nspawn exec $name sh -c 'ls -d /var/lib/cell/dav/files/bob /var/lib/cell/dav/collections/collection-root/bob /var/lib/cell/dav/files/.props/bob.sqlite 2>/dev/null'; }
check "no home, collection or file properties of his are left on the cell" [ -z "$(left)" ]
check "nothing is left to export" [ "$(api GET /api/v1/users/bob/export)" = 404 ]
check "a new bob can be made" [ "$(api POST /api/v1/users '{"name":"bob","role":"peer","password":"another passphrase"}')" = 201 ]
# This address's refused logins (the old bob's, disabled) make it wait a few seconds.
check "he logs in (the old bob's refused logins are not held against his account)" \
    wait_until 30 api_login bob "another passphrase"
check "he makes an app password" [ "$(api POST /api/v1/users/bob/app-passwords '{"name":"phone"}')" = 201 ]
bob_app=$(field 'v["password"]')
new_bob_served() { [ "$(dav bob "$bob_app" PROPFIND https://calendar.home.cell/bob/calendar/ -H 'Depth: 0')" = 207 ]; }
check "and gets a calendar of his own" wait_until 30 new_bob_served
check "which does not hold the old bob's event" [ "$(dav bob "$bob_app" GET https://calendar.home.cell/bob/calendar/bobs.ics)" = 404 ]
check "nor his home the old bob's file" [ "$(dav bob "$bob_app" GET https://files.home.cell/bobs-note.txt)" = 404 ]

finish
