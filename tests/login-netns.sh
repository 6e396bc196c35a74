#!/usr/bin/env bash
# T1: the login guard over the real binaries (celld and cell-web, release builds) in a
# network namespace of their own. A burst of 64 parallel wrong logins for one account
# is refused, and only the throttle's allowance of them reaches a password hash (celld
# counts the hashes it verifies); celld's peak memory stays under 100 MB; the right
# password afterwards waits out the throttle, as Retry-After says. The same burst from
# 64 addresses of one IPv6 /64 (for 64 accounts, so only the source key can hold it).
#   tests/login-netns.sh BIN_DIR     (root; skips with a message otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/check.sh
. tests/lib/local-cell.sh
require_root "login-netns: needs root for a network namespace"
require_tool unshare
local_cell_netns "$0" "$@"

bin=$(realpath "${1:-target/release}")
password="correct horse battery"
prefix=2001:db8:1:2
ip -6 addr add "$prefix::1/64" dev lo nodad
for i in $(seq 64); do ip -6 addr add "$prefix::$((1000 + i))/128" dev lo nodad; done

local_cell_start "$bin"
check "the cell is set up through cell-web" local_cell_setup "$password"

hash_checks() { celld_api GET /v1/status >/dev/null && field 'v["auth"]["password_checks"]'; }
# The attempts the throttle admits in SECONDS after the free ones: the next after 1 s,
# then 2, 4, 8 … s later.
allowance() {
    python3 -c 'import sys; t=float(sys.argv[1]); print(3 + sum(1 for k in range(12) if 2**(k+1) - 1 <= t))' "$1"
}
# burst < lines of "SOURCE USER BASE_URL": one wrong login per line, all at once; HTTP
# codes in $tmp/codes.
burst() {
    xargs -P 64 -L 1 sh -c 'curl -s -o /dev/null -w "%{http_code}\n" --max-time 120 --interface "$0" \
        -H "content-type: application/json" \
        --data "{\"username\":\"$1\",\"password\":\"not the password\"}" "$2/api/v1/session"' \
        | tee "$tmp/codes" >/dev/null
}
count() { grep -c "^$1\$" "$tmp/codes" || true; }

# --- one account, one address -----------------------------------------------------------
before=$(hash_checks)
start=$(date +%s.%N)
for _ in $(seq 64); do echo "127.0.0.1 alice $CELL_BASE"; done | burst
elapsed=$(python3 -c "import sys; print(round($(date +%s.%N) - $start, 2))")
hashed=$(($(hash_checks) - before))
allowed=$(allowance "$elapsed")
echo "# 64 wrong logins for alice: $(count 401) refused as wrong, $(count 429) throttled; $hashed hashes in ${elapsed}s (allowance $allowed)"
check "every one of the 64 is refused (401 or 429)" [ "$(($(count 401) + $(count 429)))" = 64 ]
check "only the throttle's allowance reached a hash ($hashed <= $allowed)" [ "$hashed" -le "$allowed" ]
check "each hash was a refused guess, nothing else" [ "$hashed" = "$(count 401)" ]
rss=$(peak_rss_kib "$celld_pid")
echo "# celld peak RSS: $((rss / 1024)) MiB"
check "celld's peak memory stayed under 100 MB" [ "$rss" -lt 100000 ]

# The right password now: refused with Retry-After until the throttle's wait is over. On
# a busy machine the burst's wait may have run out meanwhile: wrong guesses first, until
# one is told to wait, so that the right one comes while the throttle holds.
for _ in $(seq 10); do
    wrong=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        --data '{"username":"alice","password":"not the password"}' "$CELL_BASE/api/v1/session")
    [ "$wrong" != 429 ] || break
done
login_body="{\"username\":\"alice\",\"password\":\"$password\"}"
waited=0 status=
for _ in $(seq 8); do
    status=$(curl -s -D "$tmp/headers" -o "$answer" -w '%{http_code}' -H 'content-type: application/json' \
        --data "$login_body" "$CELL_BASE/api/v1/session")
    [ "$status" = 429 ] || break
    wait=$(tr -d '\r' <"$tmp/headers" | awk -F': ' 'tolower($1) == "retry-after" {print $2}')
    [ -n "$wait" ] || break
    waited=$((waited + wait))
    sleep "$wait"
done
echo "# the right password waited ${waited}s, as Retry-After said"
check "the right password is throttled at first, with Retry-After" [ "$waited" -ge 1 ]
check "and logs in once the wait is over" [ "$status" = 200 ]

# --- 64 accounts, 64 addresses of one /64 -----------------------------------------------
before=$(hash_checks)
start=$(date +%s.%N)
for i in $(seq 64); do echo "$prefix::$((1000 + i)) user$i http://[$prefix::1]:8080"; done | burst
elapsed=$(python3 -c "import sys; print(round($(date +%s.%N) - $start, 2))")
hashed=$(($(hash_checks) - before))
allowed=$(allowance "$elapsed")
echo "# 64 wrong logins from 64 addresses of $prefix::/64: $(count 401) refused as wrong, $(count 429) throttled; $hashed hashes (allowance $allowed)"
check "the /64 counts as one source: only its allowance reached a hash" [ "$hashed" -le "$allowed" ]
check "every one of the 64 is refused" [ "$(($(count 401) + $(count 429)))" = 64 ]
check "the health check answered all along" [ "$(curl -s -o /dev/null -w '%{http_code}' "$CELL_BASE/health")" = 200 ]
finish "# all login checks passed"
