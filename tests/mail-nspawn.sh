#!/usr/bin/env bash
# T2 — the mail machine in the booted image. Boots the image tree under systemd-nspawn, sets
# the cell up with mail on, and checks it the way mail clients on the LAN see it: swaks
# submits on 587 with app passwords, Python's imaplib reads over 993 trusting only the
# cell's root, and relaying, wrong passwords and disabled users are refused; mail logins
# answer to celld's throttle, audit and app-password list. The mail
# machine itself is a systemd-nspawn container inside the booted cell.
#   tests/mail-nspawn.sh TREE
set -euo pipefail
cd "$(dirname "$0")/.."

tree=${1:?usage: $0 IMAGE_TREE}
name=cell-mail
net=${CELL_MAIL_NET:-5}
nspawn=scripts/cell-nspawn
address=10.77.$net.2
base=https://$address
CELL_BASE=$base
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh
require_root "booting the image needs root (systemd-nspawn, veth)"
require_tool swaks "mail-nspawn: missing swaks (make deps)"
require_tool kdig "mail-nspawn: missing kdig (make deps)"
/usr/bin/python3 -c 'import dkim' 2>/dev/null || _check_skip "mail-nspawn: missing python3-dkim (make deps)"

show_logs() {
    echo "--- celld's appliers ---"
    $nspawn exec $name cellctl status 2>/dev/null | tail -n 20 || true
    echo "--- the cell's journal, mail (last 80 lines) ---"
    $nspawn exec $name journalctl --no-pager -n 80 -u celld -u systemd-nspawn@mail -u 'cell-machine-reload@*' 2>/dev/null || true
    echo "--- the mail machine's journal (last 60 lines) ---"
    $nspawn exec $name sh -c 'nsenter -t "$(machinectl show mail -p Leader --value)" -a journalctl --no-pager -n 60' 2>/dev/null || true
}
stop_container() { $nspawn stop $name || true; }
on_exit stop_container
on_failure show_logs

$nspawn stop $name 2>/dev/null || true
$nspawn start "$tree" $name "$net"
code=$(wait_for_url "http://$address/ca.pem" 120) || true
check "the cell answers (got $code)" [ "$code" = 200 ]
trust_cell_root "http://$address"

# --- setup with mail on; a second user; an app password each ----------------------------
setup_code=$($nspawn exec $name cellctl setup-code | sed -n 's/^Setup code: //p')
setup='{"code":"'$setup_code'","cell_name":"home","domain":{"mode":"internal"},"timezone":"UTC","admin_username":"alice","admin_password":"correct horse battery","services":{"mail":true}}'
check "setup with mail on" [ "$(api POST /api/v1/setup "$setup")" = 200 ]
api_login alice "correct horse battery"
check "alice adds bob" [ "$(api POST /api/v1/users '{"name":"bob","role":"peer","password":"bobs own passphrase"}')" = 201 ]
check "alice makes an app password for her laptop" \
    [ "$(api POST /api/v1/users/alice/app-passwords '{"name":"laptop"}')" = 201 ]
alice_app=$(field 'v["password"]')
api_login bob "bobs own passphrase"
check "bob makes one for his phone" [ "$(api POST /api/v1/users/bob/app-passwords '{"name":"phone"}')" = 201 ]
bob_app=$(field 'v["password"]')
api_login alice "correct horse battery"

machine_up() { [ "$($nspawn exec $name systemctl is-active systemd-nspawn@mail.service)" = active ]; }
check "celld started the mail machine" wait_until 60 machine_up
in_machine() { $nspawn exec $name sh -c 'exec nsenter -t "$(machinectl show mail -p Leader --value)" -a "$@"' _ "$@"; }
services_up() { in_machine systemctl is-active postfix.service dovecot.service >/dev/null 2>&1; }
check "Postfix and Dovecot run in it" wait_until 60 services_up
listening() { python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()' "$address" "$1" 2>/dev/null; }
for port in 25 465 587 993; do
    check "port $port answers from the LAN side (redirected to the machine)" wait_until 30 listening $port
done
machine_uid=$($nspawn exec $name sh -c 'stat -c %u /proc/"$(machinectl show mail -p Leader --value)"')
check "the machine's init runs in its own user range (uid $machine_uid on the cell)" [ "$machine_uid" = 1879048192 ]

# --- submission and delivery ----------------------------------------------------------
token=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
send() {
    swaks --server "$address" --port 587 --tls --tls-verify --tls-ca-path "$cell_root" --tls-sni mail.home.cell \
        --ehlo laptop.home.cell --auth PLAIN --auth-user "$1" --auth-password "$2" \
        --from "$3" --to "$4" --header "Subject: $5" --body "hello $5" >"$tmp/swaks.log" 2>&1
}
check "swaks submits on 587 (STARTTLS, verified against the cell's root) with alice's app password" \
    send alice "$alice_app" alice@home.cell bob@home.cell "first-$token"
check "the message was accepted for delivery" grep -q '250 2.0.0 Ok: queued' "$tmp/swaks.log"
imap_fetch() { imap_has "$address" 993 mail.home.cell "$@"; }
check "imaplib fetches it as bob over 993 (TLS trusting only the cell's root), with his app password" \
    wait_until 15 imap_fetch bob "$bob_app" "first-$token"
check "bob's login with his full address works too" imap_fetch bob@home.cell "$bob_app" "first-$token"
check "bob's account password works for mail too (no second factor, not turned off)" \
    imap_fetch bob "bobs own passphrase" "first-$token"
# Dovecot puts every login to celld (its login policy): the app password's use shows.
phone_used_by_mail() {
    [ "$(api GET /api/v1/users/bob/app-passwords)" = 200 ] &&
        [ "$(field '[a["last_service"] for a in v if a["name"] == "phone"]')" = "['mail']" ]
}
check "bob's app password list shows its last use, by mail" wait_until 10 phone_used_by_mail
# Dovecot finds an app password by its id: the tenth works as well as the first.
api_login bob "bobs own passphrase"
made=0
for n in $(seq 2 10); do
    [ "$(api POST /api/v1/users/bob/app-passwords "{\"name\":\"device $n\"}")" != 201 ] || made=$((made + 1))
done
check "bob makes nine more app passwords" [ "$made" = 9 ]
tenth=$(field 'v.get("password", "")')
api_login alice "correct horse battery"
check "bob's tenth app password reads his mail too" wait_until 15 imap_fetch bob "$tenth" "first-$token"

# --- the zone's mail records, and the DKIM signature checked against them ---------------
dig_short() { kdig +time=2 +retry=1 +short @"$address" "$@" 2>/dev/null; }
check "cell-dns serves the MX (mail.home.cell.)" [ "$(dig_short home.cell MX)" = "10 mail.home.cell." ]
check "an SPF record (only the MX sends)" grep -qx '"v=spf1 mx -all"' <<<"$(dig_short home.cell TXT)"
check "a DMARC policy" grep -q 'v=DMARC1; p=quarantine' <<<"$(dig_short _dmarc.home.cell TXT)"
check "the DKIM key at cell._domainkey" grep -q 'v=DKIM1; k=rsa; p=MII' <<<"$(dig_short cell._domainkey.home.cell TXT)"
dkim_verified() {
    /usr/bin/python3 - "$address" "$cell_root" bob "$bob_app" "first-$token" <<'PY'
import imaplib, re, socket, ssl, subprocess, sys
import dkim
address, root, user, password, subject = sys.argv[1:]
context = ssl.create_default_context(cafile=root)
class Imap(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        return self.ssl_context.wrap_socket(socket.create_connection((address, 993), timeout),
                                            server_hostname="mail.home.cell")
def txt(name, timeout=5):
    # The key as cell-dns serves it, asked with kdig like any resolver would.
    out = subprocess.run(["kdig", "+short", "+time=2", f"@{address}", name.decode().rstrip("."), "TXT"],
                         capture_output=True, text=True).stdout
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', out)).encode()
with Imap("mail.home.cell", 993, ssl_context=context, timeout=10) as imap:
    imap.login(user, password)
    imap.select("INBOX")
    _, found = imap.search(None, "SUBJECT", f'"{subject}"')
    _, data = imap.fetch(found[0].split()[0], "(RFC822)")
message = data[0][1]
signature = re.search(rb"^DKIM-Signature:.*?(?=^\S)", message, re.M | re.S)
print("signature:", signature.group(0).decode().split(";")[:3] if signature else None)
sys.exit(0 if signature and dkim.verify(message, dnsfunc=txt) else 1)
PY
}
check "alice's message carries a DKIM signature that verifies against the key cell-dns serves" dkim_verified

check "alice gives bob the alias info@" [ "$(api PATCH /api/v1/users/bob '{"mail_aliases":["info"]}')" = 200 ]
check "an alias that is a username is refused, naming the field" \
    bash -c '[ "$1" = 400 ] && grep -q mail_aliases "$2"' _ "$(api PATCH /api/v1/users/bob '{"mail_aliases":["alice"]}')" "$answer"
alias_mail() { send alice "$alice_app" alice@home.cell info@home.cell "alias-$token"; }
# The alias reaches Postfix once celld has rendered it and Postfix reloaded.
check "swaks sends to info@home.cell" wait_until 15 alias_mail
check "bob gets mail sent to his alias" wait_until 15 imap_fetch bob "$bob_app" "alias-$token"

# --- refusals -----------------------------------------------------------------------------
refused_login() { local rc=0; imap_fetch bob "$1" "first-$token" || rc=$?; [ "$rc" = 2 ]; }
check "a wrong password is refused over IMAP" refused_login "abcd-efgh-jkmn-pqrs"
check "so is a two-letter one" refused_login "ab"
no_panic() {
    local journal
    journal=$(in_machine journalctl --no-pager -q 2>/dev/null) && [ -n "$journal" ] &&
        ! grep -qE 'Panic:|Fatal:|killed with signal' <<<"$journal"
}
check "and Dovecot did not stumble on it (no panic in the machine's journal)" no_panic
check "and over submission" bash -c "! swaks --server $address --port 587 --tls --auth PLAIN --auth-user alice --auth-password wrong-password --from alice@home.cell --to bob@home.cell >'$tmp/wrong.log' 2>&1"
grep -q '<~\* 535' "$tmp/wrong.log" || { echo "# swaks got:"; tail -n 6 "$tmp/wrong.log" | sed 's/^/#   /'; }
check "with 535" grep -q '<~\* 535' "$tmp/wrong.log"
failures_audited() {
    [ "$(api GET '/api/v1/audit?action=auth.service_failure')" = 200 ] &&
        grep -q '"imap"' "$answer" && grep -q '"smtp"' "$answer"
}
check "celld audits both refusals, with their protocol" wait_until 10 failures_audited
swaks --server "$address" --port 25 --ehlo stranger.example --from someone@example.net --to victim@example.com >"$tmp/relay.log" 2>&1 || true
check "unauthenticated relaying on port 25 is refused" grep -q 'Relay access denied' "$tmp/relay.log"
swaks --server "$address" --port 587 --tls --ehlo stranger.example --from someone@example.net --to bob@home.cell >"$tmp/noauth.log" 2>&1 || true
check "submission without a login is refused" grep -qE '<~\* 5[0-9][0-9]' "$tmp/noauth.log"
swaks --server "$address" --port 587 --tls --auth PLAIN --auth-user alice --auth-password "$alice_app" \
    --from bob@home.cell --to alice@home.cell >"$tmp/spoof.log" 2>&1 || true
check "alice may not send as bob" grep -q 'Sender address rejected: not owned by user alice' "$tmp/spoof.log"
swaks --server "$address" --port 25 --ehlo stranger.example --from alice@home.cell --to bob@home.cell >"$tmp/forged.log" 2>&1 || true
check "nor may a stranger on port 25 use alice's address" grep -q 'Sender address rejected' "$tmp/forged.log"
swaks --server "$address" --port 25 --ehlo peer.example --from someone@example.net --to bob@home.cell \
    --header "Subject: inbound-$token" >"$tmp/inbound.log" 2>&1 || true
check "inbound mail on 25 for a user of the cell is accepted" grep -q '250 2.0.0 Ok: queued' "$tmp/inbound.log"
check "and delivered" wait_until 15 imap_fetch bob "$bob_app" "inbound-$token"
swaks --server "$address" --port 587 --tls --auth PLAIN --auth-user alice --auth-password "$alice_app" \
    --from alice@home.cell --to someone@example.com >"$tmp/out.log" 2>&1 || true
check "a .cell cell sends nothing out of the cell, even for its users" grep -q 'Relay access denied' "$tmp/out.log"

# --- disabling a user refuses their next login at once -----------------------------------
# A session bob has open: it must end when he is disabled (Dovecot alone would keep it).
python3 - "$cell_root" "$address" "$bob_app" "$tmp/session-open" >"$tmp/session.log" 2>&1 <<'PY' &
import imaplib, pathlib, socket, ssl, sys, time
root, address, password, flag = sys.argv[1:]
context = ssl.create_default_context(cafile=root)
class Imap(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection((address, 993), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname="mail.home.cell")
imap = Imap("mail.home.cell", 993, ssl_context=context, timeout=30)
imap.login("bob", password)
imap.select("INBOX")
pathlib.Path(flag).touch()
deadline = time.time() + 90
while time.time() < deadline:
    try:
        imap.noop()
    except (imaplib.IMAP4.abort, OSError) as error:
        print("ended:", error)
        sys.exit(0)
    time.sleep(0.2)
print("still open")
sys.exit(1)
PY
session_pid=$!
check "bob has an IMAP session open" wait_until 30 test -e "$tmp/session-open"
check "alice disables bob" [ "$(api PATCH /api/v1/users/bob '{"disabled":true}')" = 200 ]
# The change applies asynchronously: a login begun half a second after it is refused
# (Dovecot answers a refusal late on purpose, auth_failure_delay; what counts is when the
# attempt began). Earlier attempts would race the write, and each refusal would count
# against the address in celld's throttle, which the later logins would wait out.
committed=$(date +%s%N)
sleep 0.5
began=$(date +%s%N)
refused_after=
rc=0
imap_fetch bob "$bob_app" "first-$token" || rc=$?
[ "$rc" != 2 ] || refused_after=$(( (began - committed) / 1000000 ))
[ "$rc" = 2 ] || { echo "# the login was not refused (exit $rc):"; tail -n 5 "$tmp/imap.log" | sed 's/^/#   /'; }
refused_in_time() { [ -n "$refused_after" ] && [ "$refused_after" -lt 1000 ]; }
check "IMAP refuses bob's login begun ${refused_after:-?} ms after the change (within 1 s)" refused_in_time
rc=0
wait "$session_pid" || rc=$?
check "and the session he had open was ended ($(tail -n 1 "$tmp/session.log"))" [ "$rc" = 0 ]
check "his mailbox is kept: mail for him is still accepted" \
    send alice "$alice_app" alice@home.cell bob@home.cell "while-disabled-$token"
check "alice enables him again" [ "$(api PATCH /api/v1/users/bob '{"disabled":false}')" = 200 ]
check "and his mail, old and new, is there" wait_until 5 imap_fetch bob "$bob_app" "while-disabled-$token"

# --- the machine's state lasts ----------------------------------------------------------------
$nspawn exec $name systemctl restart systemd-nspawn@mail.service
check "after a restart of the mail machine" wait_until 60 services_up
check "bob's messages are all still there" wait_until 30 imap_fetch bob "$bob_app" "first-$token"
check "the mailboxes are stored on the cell under the machine's own users" \
    [ "$($nspawn exec $name stat -c '%u %a' /var/lib/cell/mail/mailboxes)" = "$((1879048192 + 5000)) 700" ]
check "the rendered accounts file is readable by the machine's root and dovecot only" \
    [ "$($nspawn exec $name stat -c '%u %a' /var/lib/cell/mail/config/passwd)" = "1879048192 640" ]
check "it holds hashes, no password" bash -c "! $nspawn exec $name grep -qF '$bob_app' /var/lib/cell/mail/config/passwd"

# --- a device's Apple profile carries the owner's mail account ------------------------------
vpn_endpoint() { api PUT /api/v1/vpn '{"subnet4":"10.87.0.0/20","listen_port":51820,"endpoint":"203.0.113.7"}'; }
check "alice sets the VPN's endpoint" grep -qx '20[02]' <<<"$(vpn_endpoint)"
check "and adds a phone for bob" [ "$(api POST /api/v1/vpn/peers '{"name":"bobphone","owner":"bob"}')" = 201 ]
# This address made failed logins above: its web logins wait their turn (the web login's
# throttle counts every attempt of an address that failed before).
wait_until 15 api_login bob "bobs own passphrase"
check "bob downloads its profile" [ "$(api GET /api/v1/vpn/peers/bobphone/mobileconfig)" = 200 ]
profile_mail() {
    python3 - "$answer" <<'PY'
import plistlib, sys
profile = plistlib.load(open(sys.argv[1], "rb"))
mail = [p for p in profile["PayloadContent"] if p["PayloadType"] == "com.apple.mail.managed"][0]
assert mail["EmailAddress"] == "bob@home.cell", mail["EmailAddress"]
assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == ("mail.home.cell", 993)
assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]) == ("mail.home.cell", 587)
print(mail["IncomingPassword"])
PY
}
profile_password=$(profile_mail) || true
check "it is a property list with his mail account (IMAPS 993, submission 587)" [ -n "$profile_password" ]
check "whose app password reads his mail over IMAP" wait_until 30 imap_fetch bob "$profile_password" "first-$token"
wait_until 15 api_login alice "correct horse battery"

# --- deleting a user after exporting their mail -------------------------------------------
check "alice downloads bob's data" [ "$(api GET /api/v1/users/bob/export)" = 200 ]
# Read whole before grep: grep -q stopping early would fail tar under pipefail.
exported_mail() { grep -q "first-$token" <<<"$(tar -xOf "$answer" --wildcards 'bob/mail/Maildir/*')"; }
check "the archive holds his mail as a maildir" exported_mail
check "alice deletes bob" [ "$(api DELETE /api/v1/users/bob)" = 204 ]
check "no mailbox of his is left on the cell" $nspawn exec $name test ! -e /var/lib/cell/mail/mailboxes/bob
swaks --server "$address" --port 587 --tls --auth PLAIN --auth-user alice --auth-password "$alice_app" \
    --from alice@home.cell --to bob@home.cell >"$tmp/deleted.log" 2>&1 || true
check "mail for him is refused" grep -qE '^<(~|\*)\* 5[0-9]{2} .*bob@home\.cell' "$tmp/deleted.log"

# --- one throttle for every login ----------------------------------------------------------
check "alice adds carol" [ "$(api POST /api/v1/users '{"name":"carol","role":"peer","password":"carols own passphrase"}')" = 201 ]
# Postfix knows her once the mail machine has taken the change.
check "and writes to her" wait_until 30 send alice "$alice_app" alice@home.cell carol@home.cell "carol-$token"
carol_reads() { imap_fetch carol "carols own passphrase" "carol-$token"; }
check "carol reads it over IMAP" wait_until 30 carol_reads
# Wrong web logins for carol from a second address on the host's side of the link (so that
# the address this test mails from is not slowed), each as soon as the schedule hears it,
# until eight have counted: her account then waits 32 s, longer than a mail login is held
# (Postfix gives up on Dovecot's answer after 10 s), and her mail logins from a third
# address, which never failed, wait with it. (Long enough for Postfix to look up that
# address's name first: with no DNS beyond the cell here, that takes some 13 s.)
ip addr add "10.77.$net.3/24" dev "ve-$name"
ip addr add "10.77.$net.4/24" dev "ve-$name"
# A settings change ends the trust her password earned by matching a moment ago.
check "alice gives carol an alias" [ "$(api PATCH /api/v1/users/carol '{"mail_aliases":["caro"]}')" = 200 ]
web_guess_counted() {
    CELL_API_SOURCE=10.77.$net.3 api_login carol "not her password" || true
    [ "$login_code" = 401 ]
}
counted=0
for _ in $(seq 8); do
    if wait_until 30 web_guess_counted; then counted=$((counted + 1)); fi
done
check "eight wrong web logins for carol count" [ "$counted" = 8 ]
rc=0
IMAP_SOURCE=10.77.$net.4 imap_fetch carol "carols own passphrase" "carol-$token" || rc=$?
check "her right password is refused over IMAP while she waits (one throttle; got $rc)" [ "$rc" = 2 ]
# Refused at once with 535 (her password is right: only the throttle refuses it), never
# held past Postfix's patience into "454 connection lost to authentication server".
swaks --server "$address" --port 587 --tls --local-interface "10.77.$net.4" --auth PLAIN --auth-user carol \
    --auth-password "carols own passphrase" --from carol@home.cell --to carol@home.cell >"$tmp/carol-wait.log" 2>&1 || true
grep -q '<~\* 535' "$tmp/carol-wait.log" || { echo "# swaks got:"; tail -n 6 "$tmp/carol-wait.log" | sed 's/^/#   /'; }
check "and over submission, with 535" grep -q '<~\* 535' "$tmp/carol-wait.log"
carol_reads_there() { IMAP_SOURCE=10.77.$net.4 imap_fetch carol "carols own passphrase" "carol-$token"; }
check "she reads her mail once the wait is over" wait_until 60 carol_reads_there
wait_until 15 api_login alice "correct horse battery"

# --- an outbound relay --------------------------------------------------------------------
# A stand-in for a provider's smarthost on the host side of the cell's link (the real ones
# cannot be reached from here): STARTTLS with a certificate of its own, AUTH, and it keeps
# what it is sent.
relay_dir=$tmp/relay
mkdir -p "$relay_dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=relay.test \
    -keyout "$relay_dir/key.pem" -out "$relay_dir/cert.pem" 2>/dev/null
python3 tests/lib/smtp-relay-standin.py "$relay_dir/cert.pem" "$relay_dir/key.pem" "$relay_dir" "10.77.$net.1" 2525 \
    "an old pass:word" &
relay_pid=$!
stop_relay() { kill "$relay_pid" 2>/dev/null || true; }
on_exit stop_relay
public='{"identity":{"cell_name":"home","domain":{"mode":"own","domain":"example.org"},"timezone":"UTC"},"services":{"mail":true}}'
old_root=$(cat "$cell_root")
check "the cell moves to a public domain, so mail may leave it" [ "$(api PUT /api/v1/settings "$public")" = 200 ]
# Its root may sign only for its domain: a new domain brings a new root.
new_root() { local root; root=$(curl -fs --max-time 5 "http://$address/ca.pem") && grep -q 'BEGIN CERTIFICATE' <<<"$root" && [ "$root" != "$old_root" ]; }
check "with a root of its own" wait_until 60 new_root
trust_cell_root "http://$address"
front_door() { [ "$(api GET /api/v1/status)" = 200 ]; }
check "and the front door serves a certificate from it" wait_until 60 front_door
# First with a login the relay no longer takes: the message waits in Postfix's queue.
stale_body='{"host":"10.77.'$net'.1","port":2525,"username":"cell@example.org","password":"an old pass:word","verify_certificate":false}'
check "alice sends outgoing mail through the relay" [ "$(api PUT /api/v1/mail/relay "$stale_body")" = 200 ]
check "its password is in no answer" bash -c '! grep -q "pass:word" "$1"' _ "$answer"
# The mail applier has applied the generation in force (the VPN's cannot here: no WireGuard).
mail_settled() {
    [ "$(api GET /api/v1/status)" = 200 ] &&
        [ "$(field 'any(a["applier"] == "mail" and a["ok"] and a["generation"] == v["generation"] for a in v["appliers"])')" = True ]
}
check "the mail machine takes it" wait_until 60 mail_settled
# Postfix refuses recipients in domains DNS does not know, and no public DNS answers here:
# the recipient is at an address literal, which needs no lookup.
swaks --server "$address" --port 587 --tls --auth PLAIN --auth-user alice --auth-password "$alice_app" \
    --from alice@example.org --to 'someone@[192.0.2.1]' --header "Subject: relayed-$token" >"$tmp/relayed.log" 2>&1 || true
check "alice's message for another domain is accepted" grep -q '250 2.0.0 Ok: queued' "$tmp/relayed.log"
grep -q '250 2.0.0 Ok: queued' "$tmp/relayed.log" || tail -n 8 "$tmp/relayed.log" | sed 's/^/#   /'
stale_refused() { grep -qxF 'auth cell@example.org:an old pass:word' "$relay_dir/events" 2>/dev/null; }
check "the relay refuses the old login" wait_until 30 stale_refused
relayed() { grep -qx 'message' "$relay_dir/events" 2>/dev/null; }
check "so the message waits in the cell" bash -c '! grep -qx message "$1/events"' _ "$relay_dir"
relay_body='{"host":"10.77.'$net'.1","port":2525,"username":"cell@example.org","password":"relay pass:word","verify_certificate":false}'
check "alice corrects the relay's password" [ "$(api PUT /api/v1/mail/relay "$relay_body")" = 200 ]
check "the mail machine takes it too" wait_until 60 mail_settled
check "where only its root may read the login" \
    [ "$($nspawn exec $name stat -c '%u %a' /var/lib/cell/mail/config/postfix/relay_password)" = "1879048192 600" ]
# Postfix would retry a deferred message after 5 minutes at the soonest; the cell has it
# retry its queue as soon as it took the new login.
check "and the waiting message reaches the relay at once" wait_until 30 relayed
check "over STARTTLS" grep -qx starttls "$relay_dir/events"
check "logged in with the cell's login" grep -qxF 'auth cell@example.org:relay pass:word' "$relay_dir/events"
check "for its recipient" grep -qiF 'RCPT TO:<someone@[192.0.2.1]>' "$relay_dir/events"
check "signed with DKIM for example.org" grep -q 'd=example.org' "$relay_dir/message-0"
verify_ip='{"host":"10.77.'$net'.1","port":2525,"username":"cell@example.org","verify_certificate":true}'
check "checking the certificate of a relay given by address is refused, naming the field" \
    bash -c '[ "$1" = 400 ] && grep -q "\"field\":\"verify_certificate\"" "$2"' _ "$(api PUT /api/v1/mail/relay "$verify_ip")" "$answer"
check "alice stops using the relay" [ "$(api DELETE /api/v1/mail/relay)" = 204 ]
login_file=/var/lib/cell/mail/config/postfix/relay_password
check "and the machine forgets the login" wait_until 60 bash -c "$nspawn exec $name test -e $login_file && ! $nspawn exec $name grep -q 'relay' $login_file"
stop_relay

# --- turning mail off stops the machine ---------------------------------------------------
check "mail turned off" [ "$(api PUT /api/v1/settings '{"identity":{"cell_name":"home","domain":{"mode":"internal"},"timezone":"UTC"},"services":{}}')" = 200 ]
machine_down() { [ "$($nspawn exec $name systemctl is-active systemd-nspawn@mail.service)" != active ]; }
check "the mail machine stops" wait_until 60 machine_down
check "port 993 no longer answers" wait_until 10 bash -c "! python3 -c 'import socket; socket.create_connection((\"$address\", 993), 2)' 2>/dev/null"

finish "# all mail machine checks passed"
