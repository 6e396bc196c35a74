#!/usr/bin/env bash
# T1: public certificates through ACME, end to end, over the real binaries (celld,
# cell-web, cell-dns) in a network namespace, against Debian's pebble in a namespace of its
# own. pebble stands in for a public ACME CA (Let's Encrypt cannot be reached from here);
# it validates for real: HTTP-01 by fetching the token from cell-web's port 80 side, DNS-01
# by asking cell-dns for the TXT record, both at the address cell-dns gives for the names.
# Checked: a failure is shown with its reason and a backoff, the cell's own certificate
# serving meanwhile; HTTP-01 issuance; clients trusting only pebble's root reach every
# name, with HSTS on those names only; DNS-01 issuance on request; renewal by itself two
# thirds into the certificate's life (pebble issues 45 s certificates here); ACME off
# withdraws the certificate.
#   tests/acme-netns.sh BIN_DIR     (root; skips with a message otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/check.sh
. tests/lib/local-cell.sh
require_root "acme-netns: needs root for network namespaces"
require_tool unshare
require_tool pebble "acme-netns: missing pebble (make deps installs it)"
require_tool kdig "acme-netns: missing kdig (make deps)"
local_cell_netns "$0" "$@"

bin=$(realpath "${1:-target/release}")
password="correct horse battery"
domain=example.test

# The cell's LAN: celld runs with --no-network and takes 192.168.1.10/24 for its LAN
# address, so that address goes on a veth whose other end is the CA's namespace.
ca_ns=cell-acme-$$
ip netns add "$ca_ns"
on_exit "ip netns del $ca_ns 2>/dev/null"
ip link add lan0 type veth peer name ca0 netns "$ca_ns"
ip addr add 192.168.1.10/24 dev lan0
ip link set lan0 up
ip netns exec "$ca_ns" ip addr add 192.168.1.20/24 dev ca0
ip netns exec "$ca_ns" ip link set ca0 up
ip netns exec "$ca_ns" ip link set lo up

# pebble's own HTTPS certificate, from a throwaway CA made here (the package ships none).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=acme-test-ca -keyout "$tmp/test-ca.key" -out "$tmp/test-ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=pebble \
    -keyout "$tmp/pebble.key" -out "$tmp/pebble.csr" 2>/dev/null
printf 'subjectAltName=IP:192.168.1.20\n' >"$tmp/pebble.ext"
openssl x509 -req -in "$tmp/pebble.csr" -CA "$tmp/test-ca.pem" -CAkey "$tmp/test-ca.key" \
    -CAcreateserial -days 2 -extfile "$tmp/pebble.ext" -out "$tmp/pebble.pem" 2>/dev/null
cat >"$tmp/pebble.json" <<EOF
{"pebble": {"listenAddress": "192.168.1.20:14000", "managementListenAddress": "192.168.1.20:15000",
  "certificate": "$tmp/pebble.pem", "privateKey": "$tmp/pebble.key",
  "httpPort": 8080, "tlsPort": 5001, "ocspResponderURL": "",
  "externalAccountBindingRequired": false, "certificateValidityPeriod": 45}}
EOF
# No sleeps before validating, no spurious bad nonces, no reuse of earlier validations
# (each order proves control again).
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    ip netns exec "$ca_ns" pebble -config "$tmp/pebble.json" -dnsserver 192.168.1.10:53 \
    >"$tmp/pebble.log" 2>&1 &
pebble_pid=$!
on_exit "kill $pebble_pid 2>/dev/null; wait $pebble_pid 2>/dev/null"
on_failure "echo '--- pebble (last 30 lines) ---'; tail -n 30 '$tmp/pebble.log'"
directory=https://192.168.1.20:14000/dir
pebble_up() { curl -s --cacert "$tmp/test-ca.pem" -o /dev/null "$directory"; }
check "pebble serves its directory" wait_until 20 pebble_up

CELLD_ACME_DIRECTORY_CA=$tmp/test-ca.pem CELL_LOCAL_TLS_PORT=8443 local_cell_start "$bin"
# The API is used by the cell's LAN address, which only its own root's certificate names
# (a client naming no host gets that one), so it works whichever certificate the names get.
check "curl trusts the cell's root alone" trust_cell_root "$CELL_BASE"
CELL_BASE=https://192.168.1.10:8443
check "the cell is set up over HTTPS" local_cell_setup "$password"
"$bin/cell-dns" --zone "$tmp/run/dns/zone.json" >"$tmp/dns.log" 2>&1 &
dns_pid=$!
on_exit "kill $dns_pid 2>/dev/null; wait $dns_pid 2>/dev/null"
on_failure "echo '--- cell-dns ---'; tail -n 20 '$tmp/dns.log'"
check "alice logs in" api_login alice "$password"
check "ACME on a .cell name is refused" [ "$(api PUT /api/v1/acme '{"enabled": true}')" = 400 ]
check "with the field named" [ "$(field 'v["field"]')" = acme.enabled ]
check "asking for a certificate there is refused too" [ "$(api POST /api/v1/acme/renew)" = 409 ]

settings="{\"identity\":{\"cell_name\":\"home\",\"domain\":{\"mode\":\"own\",\"domain\":\"$domain\"},\"timezone\":\"UTC\"},\"services\":{\"files\":true}}"
check "the cell moves to its own domain $domain with the files service on" \
    [ "$(api PUT /api/v1/settings "$settings")" = 200 ]
# The own domain is outside the first root's constraints: the cell makes a new root.
first_root=$(fingerprint_of "$cell_root")
new_root() { trust_cell_root http://127.0.0.1:8080 && [ "$(fingerprint_of "$cell_root")" != "$first_root" ]; }
check "curl trusts the new root the own domain brought" wait_until 10 new_root
api_answers() { [ "$(api GET /api/v1/acme)" = 200 ]; }
check "the front door serves a certificate from it" wait_until 10 api_answers
apex_answers() { [ "$(kdig +time=1 +retry=0 +short @192.168.1.10 "files.$domain" A 2>/dev/null)" = 192.168.1.10 ]; }
check "cell-dns answers for the domain on the LAN address" wait_until 15 apex_answers

# acme_field EXPR: EXPR on v, GET /api/v1/acme's answer (None printed for null).
acme_field() { api GET /api/v1/acme >/dev/null && field "$1"; }
state_is() { [ "$(acme_field 'v["state"]')" = "$1" ]; }

# A wrong directory: the reason is shown, with a backoff; the cell's own root serves on.
code=$(api PUT /api/v1/acme '{"enabled": true, "directory": "https://192.168.1.20:14999/dir"}')
check "ACME turned on against a directory that does not answer ($code)" [ "$code" = 200 ]
check "its failure is shown" wait_until 20 state_is failing
error=$(acme_field 'v["last_error"]')
echo "# last error: $error"
check "the error names the step and the cause" grep -q "CA.*refused" <<<"$error"
check "the next attempt waits ($(field 'v["failures"]') failure, next at $(field 'v["next_attempt"]'))" \
    [ "$(field 'v["next_attempt"] is not None and v["failures"] == 1')" = True ]
check "no ACME certificate meanwhile" [ "$(field 'v["certificate"]')" = None ]
own_serves() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --connect-to ::127.0.0.1:8443 "https://$domain/health")" = 200 ]; }
check "the cell's own certificate serves the domain meanwhile (curl trusting the cell's root)" own_serves

# HTTP-01 against pebble.
check "ACME pointed at pebble with HTTP-01" \
    [ "$(api PUT /api/v1/acme "{\"enabled\": true, \"directory\": \"$directory\", \"challenge\": \"http-01\"}")" = 200 ]
started=$(date +%s)
check "a certificate is issued through HTTP-01" wait_until 60 state_is valid
echo "# issued $(($(date +%s) - started)) s after ACME was turned on"
check "it was proved by HTTP-01" [ "$(acme_field 'v["issued_with"]')" = http-01 ]
check "pebble fetched the tokens from the cell's port 80 side" \
    grep -q "validate w/ HTTP: http://files.$domain:8080/.well-known/acme-challenge/" "$tmp/pebble.log"

curl --silent --cacert "$tmp/test-ca.pem" https://192.168.1.20:15000/roots/0 >"$tmp/pebble-root.pem"
check "pebble's issuing root is fetched from its management port" grep -q "BEGIN CERTIFICATE" "$tmp/pebble-root.pem"
public() {
    curl --silent --show-error --max-time 5 --cacert "$tmp/pebble-root.pem" \
        --connect-to "::127.0.0.1:8443" "$@"
}
reaches() { [ "$(public -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" = 200 ]; }
# The front door takes the new certificate at its next look (every 2 s).
check "a client trusting only pebble's root reaches https://$domain/" \
    wait_until 10 reaches "https://$domain/health"
# files.<domain> is the files service's: past the handshake, it asks for its login (401).
check "and https://files.$domain/ (a name on the same certificate)" \
    [ "$(public -o /dev/null -w '%{http_code}' "https://files.$domain/health")" = 401 ]
check "over HTTP/2 too" \
    [ "$(public --http2 -o /dev/null -w '%{http_version}' "https://$domain/health")" = 2 ]
check "the public name is sent with HSTS" \
    bash -c "curl -s --max-time 5 --cacert '$tmp/pebble-root.pem' --connect-to ::127.0.0.1:8443 -D - -o /dev/null https://$domain/health | grep -qi '^strict-transport-security: max-age='"
no_hsts_by_address() { ! curl -sk --max-time 5 -D - -o /dev/null https://127.0.0.1:8443/health | grep -qi '^strict-transport-security'; }
check "the cell reached by address (its own root's certificate) gets no HSTS" no_hsts_by_address
first_not_before=$(acme_field 'v["certificate"]["not_before"]')

# DNS-01, asked for now. pebble logs each HTTP validation but not DNS ones: with no
# authorization reused, an issuance without a new HTTP validation was proved over DNS.
http_validations() { grep -c "validate w/ HTTP" "$tmp/pebble.log"; }
before_dns=$(http_validations)
check "the challenge is switched to DNS-01" \
    [ "$(api PUT /api/v1/acme "{\"enabled\": true, \"directory\": \"$directory\", \"challenge\": \"dns-01\"}")" = 200 ]
check "a new certificate is asked for at once" [ "$(api POST /api/v1/acme/renew)" = 200 ]
by_dns() { [ "$(acme_field 'v["issued_with"] == "dns-01" and v["state"] == "valid"')" = True ]; }
check "it is issued through DNS-01, answered by cell-dns" wait_until 60 by_dns
check "pebble validated nothing over HTTP for it ($before_dns HTTP validations before and after)" \
    [ "$(http_validations)" = "$before_dns" ]
no_txt_left() { [ -z "$(kdig +time=1 +retry=0 +short @192.168.1.10 "_acme-challenge.$domain" TXT 2>/dev/null)" ]; }
check "the TXT record is gone from the zone afterwards" wait_until 5 no_txt_left
check "the new certificate is served to a client trusting only pebble" \
    [ "$(public -o /dev/null -w '%{http_code}' "https://files.$domain/health")" = 401 ]

# Renewal by itself, two thirds into a 45 s life.
not_before() { acme_field 'v["certificate"]["not_before"] if v["certificate"] else ""'; }
current=$(not_before)
renewed() { local now; now=$(not_before); [ -n "$now" ] && [ "$now" != "$current" ] && state_is valid; }
check "the certificate renews itself before it expires (not asked)" wait_until 60 renewed
echo "# certificates' not_before: $first_not_before, $current, $(not_before)"

# Off: the ACME certificate is withdrawn; the cell's own root serves the names again.
check "ACME is turned off" [ "$(api PUT /api/v1/acme '{"enabled": false}')" = 200 ]
withdrawn() { [ "$(public -o /dev/null -w '%{http_code}' "https://$domain/health" 2>/dev/null)" = 000 ]; }
check "the public certificate is no longer served" wait_until 10 withdrawn
finish "# all ACME checks passed"
