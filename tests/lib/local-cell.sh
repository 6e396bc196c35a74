# The real celld and cell-web binaries on this machine, in a network namespace of their
# own, for the T1 login test and its benchmark. Sourced after tests/lib/check.sh.
#
#   local_cell_netns "$0" "$@"     first thing in the script: re-runs it (as root) inside
#                                  a new network namespace, with loopback up
#   local_cell_start BIN_DIR       starts celld (--no-system --no-network) and cell-web
#                                  on [::]:8080 with state in $tmp; sets celld_pid,
#                                  web_pid, CELL_BASE, celld_socket. With
#                                  CELL_LOCAL_TLS_PORT set, cell-web serves HTTPS there
#                                  and port 8080 is its plain-HTTP side; the words of
#                                  CELL_LOCAL_WEB_ARGS are added to cell-web's arguments
#   local_cell_setup PASSWORD      claims the cell with alice as its administrator
#   celld_api METHOD PATH [JSON]   celld's own API, as root (no session)
#   peak_rss_kib PID               the process's peak resident memory (VmHWM), KiB
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables here are for the scripts that source this

local_cell_netns() {
    if [ "${CELL_LOCAL_NETNS:-}" != 1 ]; then
        CELL_LOCAL_NETNS=1 exec unshare --net -- "$@"
    fi
    ip link set lo up
}

local_cell_start() {
    local bin=$1
    mkdir -p "$tmp/state" "$tmp/run"
    celld_socket=$tmp/run/celld.sock
    "$bin/celld" --socket "$celld_socket" --state-dir "$tmp/state" --run-dir "$tmp/run" \
        --web-user root --no-system --no-network >"$tmp/celld.log" 2>&1 &
    celld_pid=$!
    for _ in $(seq 50); do [ -S "$celld_socket" ] && break; sleep 0.1; done
    local tls=()
    [ -z "${CELL_LOCAL_TLS_PORT:-}" ] || tls=(--tls-listen "[::]:$CELL_LOCAL_TLS_PORT")
    # shellcheck disable=SC2086 # word splitting wanted
    "$bin/cell-web" --listen '[::]:8080' "${tls[@]}" ${CELL_LOCAL_WEB_ARGS:-} --celld-socket "$celld_socket" >"$tmp/web.log" 2>&1 &
    web_pid=$!
    CELL_BASE=http://127.0.0.1:8080
    on_exit "kill $web_pid $celld_pid 2>/dev/null; wait $web_pid $celld_pid 2>/dev/null"
    on_failure "echo '--- celld (last 20 lines) ---'; tail -n 20 '$tmp/celld.log'; echo '--- cell-web ---'; tail -n 20 '$tmp/web.log'"
    wait_for_url "$CELL_BASE/health" 30 "$web_pid" >/dev/null
}

local_cell_setup() {
    local code body
    code=$(cat "$tmp/state/setup-code")
    body=$(python3 -c 'import json,sys; print(json.dumps({"code": sys.argv[1], "cell_name": "home", "domain": {"mode": "internal"}, "timezone": "UTC", "admin_username": "alice", "admin_password": sys.argv[2], "services": {}}))' "$code" "$1")
    [ "$(api POST /api/v1/setup "$body")" = 200 ]
}

celld_api() { CELL_SOCKET=$celld_socket CELL_BASE=http://celld csrf='' api "$@"; }

peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
