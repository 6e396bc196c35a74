#!/usr/bin/env bash
# T1: the HTTPS front door over the real binaries (celld and cell-web, release builds) in a
# network namespace of their own, judged by real TLS clients: testssl.sh (protocols,
# ciphers, vulnerabilities: no "NOT ok"; its report is kept in build/test-output/) and curl
# trusting only the cell's root; a service turned on through the API gets its name on a
# new certificate that new connections are served within seconds, with no restart.
#   tests/tls-netns.sh BIN_DIR     (root; skips with a message otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/check.sh
. tests/lib/local-cell.sh
require_root "tls-netns: needs root for a network namespace"
require_tool unshare
require_tool testssl "tls-netns: missing testssl (make deps installs testssl.sh)"
local_cell_netns "$0" "$@"

bin=$(realpath "${1:-target/release}")
report=build/test-output/testssl.txt
CELL_LOCAL_TLS_PORT=8443 local_cell_start "$bin"
web_pid_before=$web_pid
check "the root downloads over plain HTTP, and curl trusts it alone from now on" \
    trust_cell_root "$CELL_BASE" 'connect-to = "::127.0.0.1:8443"'
served() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "https://$1/health"; }
# Before setup the cell is cell.cell; the wizard makes it home.cell.
CELL_BASE=https://cell.cell
check "the cell is set up over HTTPS" local_cell_setup "correct horse battery"
CELL_BASE=https://home.cell
ready() { [ "$(served home.cell)" = 200 ]; }
check "https://home.cell/ answers with a certificate from that root" wait_until 20 ready
check "a name the certificate does not carry is refused by the client" \
    [ "$(served files.home.cell)" = 000 ]

# testssl.sh: every protocol, cipher and vulnerability check, against the cell's name.
mkdir -p "$(dirname "$report")"
testssl --quiet --color 0 --warnings off --ip 127.0.0.1 --protocols --std --server-defaults \
    --vulnerable --add-ca "$cell_root" "https://home.cell:8443/" >"$report" 2>&1 || true
echo "# testssl.sh summary (full report: $report)"
grep -E '^ (SSLv2|SSLv3|TLS 1(\.[0-3])?|NPN|ALPN|Heartbleed|CCS|Ticketbleed|ROBOT|Secure Renegotiation|CRIME|BREACH|POODLE|TLS_FALLBACK|SWEET32|FREAK|DROWN|LOGJAM|BEAST|LUCKY13|Winshock|RC4)' "$report" \
    | sed 's/  */ /g; s/^/#   /' || true
check "testssl ran to the end" grep -q 'Done ' "$report"
# The report's sections but the server defaults' (certificate facts such as "no OCSP URI",
# which a private root has no use for).
judged() { awk '/^ Testing server defaults/ {skip=1} /^ Testing (protocols|cipher|vulnerab|robust|[0-9]+ ciphers)/ {skip=0} !skip' "$report"; }
nothing_not_ok() { ! judged | grep -q 'NOT ok'; }
check "testssl finds no \"NOT ok\" in protocols, ciphers or vulnerabilities" nothing_not_ok
check "it sees TLS 1.3 and TLS 1.2 offered, and nothing older" \
    bash -c "grep -qE '^ TLS 1.3 +offered' '$report' && grep -qE '^ TLS 1.2 +offered' '$report' \
        && grep -qE '^ TLS 1.1 +not offered' '$report' && grep -qE '^ SSLv3 +not offered' '$report'"
check "it sees HTTP/2 offered by ALPN" grep -qE 'ALPN/HTTP2.*h2' "$report"
check "it finds the chain trusted by the cell's root" grep -qE 'Chain of trust +Ok' "$report"

# A service turned on: its name is on a new certificate within seconds, no restart.
settings='{"identity":{"cell_name":"home","domain":{"mode":"internal"},"timezone":"UTC"},"services":{"files":true}}'
api_login alice "correct horse battery" || true
check "alice turns the files service on" [ "$(api PUT /api/v1/settings "$settings")" = 200 ]
# The name is now the files service's: the front door asks for its login (401).
files_served() { [ "$(served files.home.cell)" = 401 ]; }
started=$(date +%s.%N)
check "new connections to files.home.cell get a certificate carrying its name, and a login prompt" wait_until 15 files_served
echo "# the new certificate was served $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s after the change"
check "without restarting cell-web (the same process serves it)" kill -0 "$web_pid_before"
check "and home.cell is still served" ready
finish "# all front-door checks passed"
