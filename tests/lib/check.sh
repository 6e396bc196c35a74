# Shared helpers for the whole-system tests (tests/*.sh), sourced once near the top:
#     . tests/lib/check.sh                    (after the script's cd to the repository)
#     . "$(dirname "$0")/lib/check.sh"        (without one)
# The script sets `set -euo pipefail` itself; everything here works under it.
#
# Results      pass MSG | fail MSG | check MSG CMD... | die MSG | finish [SUCCESS-LINE]
# Clean-up     on_exit CMD | on_failure CMD        (one EXIT trap; do not set your own)
#              $tmp: a temporary directory, removed at exit
# Waiting      wait_for_url URL TRIES [PID] | wait_until TRIES CMD... | settled STATUS_PATH
# REST API     api METHOD PATH [JSON] | api_login USER PASSWORD | field EXPR [ARG...]
#              $CELL_BASE (set by the script), $CELL_SOCKET (optional), $jar, $answer, $csrf
# Guards       require_root WHY | require_tool NAME [WHY]
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables here are for the scripts that source this

# --- results -------------------------------------------------------------------------------
failures=0

pass() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
# Runs CMD; one "ok"/"not ok" line named WHAT. A failing CMD does not stop the script.
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# A failure the rest of the script cannot go on from.
die() { fail "$*"; exit 1; }
# The end of a script: "# N check(s) failed" and exit 1 when any failed, else SUCCESS-LINE
# (printed as given, e.g. "# all VM checks passed").
finish() {
    if [ "$failures" -ne 0 ]; then
        echo "# $failures check(s) failed"
        exit 1
    fi
    echo "${1:-# all checks passed}"
}

# --- clean-up ------------------------------------------------------------------------------
# on_exit CMD: CMD (a shell command line, evaluated at exit) runs when the script exits.
# on_failure CMD: the same, but only when the script exits non-zero or a check failed.
# All of them run in reverse order of registration, with errexit and nounset off, so one
# failing clean-up does not skip the others; the script's exit status is kept.
_check_cleanups=()
on_exit() { _check_cleanups+=("$1"); }
on_failure() { _check_cleanups+=($'if _check_failed; then\n'"$1"$'\nfi'); }
_check_rc=0
_check_failed() { [ "$_check_rc" -ne 0 ] || [ "$failures" -ne 0 ]; }
_check_exit() {
    _check_rc=$?
    set +eu
    local _check_i
    for ((_check_i = ${#_check_cleanups[@]} - 1; _check_i >= 0; _check_i--)); do
        eval "${_check_cleanups[_check_i]}"
    done
    exit "$_check_rc"
}
trap _check_exit EXIT

tmp=$(mktemp -d)
_check_remove_tmp() { rm -rf "$tmp"; }
on_exit _check_remove_tmp

# --- waiting -------------------------------------------------------------------------------
# Polls URL (curl, 2 s per try) up to TRIES times, a second apart, until it answers 200, or
# until process PID (if given) has died. Prints the last HTTP code (000: no answer); the
# last answer's body is in $answer. Succeeds only on 200, so: code=$(wait_for_url ...) || true
wait_for_url() {
    local url=$1 tries=$2 pid=${3:-} code=000
    for _ in $(seq "$tries"); do
        code=$(curl -s -o "$answer" -w '%{http_code}' --max-time 2 "$url" || true)
        [ "$code" = 200 ] && break
        [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    echo "$code"
    [ "$code" = 200 ]
}

# trust_cell_root HTTP_URL [CURLRC_LINE...]: fetches the cell's root certificate from
# HTTP_URL/ca.pem (served over plain HTTP so that a device can get it before it trusts
# the cell) into $cell_root, and makes every later curl of the script trust it and only
# it, through a curlrc in $tmp (extra lines, e.g. `connect-to = ...`, are added to it).
cell_root=$tmp/cell-root.pem
trust_cell_root() {
    local url=$1
    shift
    curl -fs --max-time 10 -o "$cell_root" "$url/ca.pem" || return 1
    grep -q 'BEGIN CERTIFICATE' "$cell_root" || return 1
    { echo "cacert = \"$cell_root\""; printf '%s\n' "$@"; } >"$tmp/.curlrc"
    export CURL_HOME=$tmp
}

# imap_has ADDRESS PORT NAME USER PASSWORD SUBJECT: logs in over IMAPS at ADDRESS:PORT
# (from $IMAP_SOURCE when set), trusting only the cell's root for the certificate of NAME,
# and looks for a message with SUBJECT in the inbox. Exit 0: there; 2: the login was
# refused; anything else: another failure (its error goes to $tmp/imap.log).
imap_has() {
    IMAP_SOURCE=${IMAP_SOURCE:-} python3 - "$cell_root" "$@" <<'PY' 2>>"$tmp/imap.log"
import imaplib, os, socket, ssl, sys
root, address, port, name, user, password, subject = sys.argv[1:]
source = os.environ["IMAP_SOURCE"]
context = ssl.create_default_context(cafile=root)
class Imap(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection((address, int(port)), timeout,
                                        source_address=(source, 0) if source else None)
        return self.ssl_context.wrap_socket(sock, server_hostname=name)
# Long enough for Dovecot's answer to a refused login (about 3 s late) plus celld's hold
# on a throttled login (at most 3 s), with room for a slow machine.
with Imap(name, int(port), ssl_context=context, timeout=90) as imap:
    try:
        imap.login(user, password)
    except imaplib.IMAP4.abort:
        sys.exit(3)  # the connection broke: not a refusal
    except imaplib.IMAP4.error:
        sys.exit(2)
    imap.select("INBOX")
    typ, found = imap.search(None, "SUBJECT", f'"{subject}"')
    sys.exit(0 if typ == "OK" and found[0].split() else 1)
PY
}

# with_hosts "ADDRESS NAME..." CMD...: runs CMD in a mount namespace of its own whose
# /etc/hosts holds that line, so that clients which look names up (python's requests,
# litmus) reach the cell by its service names.
with_hosts() {
    local line=$1
    shift
    printf '127.0.0.1 localhost\n%s\n' "$line" >"$tmp/hosts"
    unshare -m sh -c 'mount --bind "$0" /etc/hosts && shift && exec "$@"' "$tmp/hosts" _ "$@"
}

# The SHA-256 fingerprint of the PEM certificate FILE as openssl prints it (AB:CD:…).
fingerprint_of() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }

# Runs CMD up to TRIES times, a second apart, until it succeeds; fails if it never does.
wait_until() {
    local tries=$1
    shift
    for _ in $(seq "$tries"); do
        "$@" && return 0
        sleep 1
    done
    return 1
}

# --- the cell's REST API -------------------------------------------------------------------
# api METHOD PATH [JSON]: calls $CELL_BASE$PATH (e.g. CELL_BASE=http://127.0.0.1:18080,
# PATH=/api/v1/status), over the Unix socket $CELL_SOCKET if that is set. Prints the HTTP
# code (000: no answer); the body is in $answer. Session cookies live in $jar; once
# api_login has run, the session's CSRF token ($csrf) goes with every call (the server
# asks for it on POST, PUT, PATCH and DELETE). For a call without it: $(csrf= api ...).
# curl's exit status is api's: under set -e, call it where a failure is expected to count.
jar=$tmp/cookies
answer=$tmp/answer
csrf=
login_code=
api() {
    local args=(-s -b "$jar" -c "$jar" -o "$answer" -w '%{http_code}' --max-time 60 -X "$1")
    [ -z "${CELL_SOCKET:-}" ] || args+=(--unix-socket "$CELL_SOCKET")
    [ -z "${CELL_API_SOURCE:-}" ] || args+=(--interface "$CELL_API_SOURCE")
    [ -z "$csrf" ] || args+=(-H "x-csrf-token: $csrf")
    [ $# -lt 3 ] || args+=(-H 'content-type: application/json' --data "$3")
    curl "${args[@]}" "${CELL_BASE:?CELL_BASE is not set}$2"
}

# Logs in (POST /api/v1/session) and keeps the session's CSRF token in $csrf. Succeeds
# when the login answered 200 with a token; the HTTP code is left in $login_code.
api_login() {
    local body
    csrf=
    body=$(python3 -c 'import json,sys; print(json.dumps({"username": sys.argv[1], "password": sys.argv[2]}))' "$1" "$2")
    login_code=$(api POST /api/v1/session "$body") || true
    [ "$login_code" = 200 ] || return 1
    csrf=$(field 'v["csrf_token"]') && [ -n "$csrf" ]
}

# Prints the Python expression EXPR evaluated on v, the JSON in $answer; further
# arguments are sys.argv[2:] (e.g. field 'sys.argv[2] in v["failed"]' "$version").
field() {
    CHECK_ANSWER=$answer python3 -c 'import json,os,sys; v=json.load(open(os.environ["CHECK_ANSWER"])); print(eval(sys.argv[1]))' "$@"
}

# Succeeds when `GET PATH` (the cell's status: /v1/status on celld's socket,
# /api/v1/status through cell-web) says every applier of the reconciler has applied the
# generation in force.
settled() {
    [ "$(api GET "$1")" = 200 ] || return 1
    [ "$(field 'bool(v["appliers"]) and all(a["ok"] and a["generation"] == v["generation"] for a in v["appliers"])')" = True ]
}

# --- guards --------------------------------------------------------------------------------
# Without root (or without the tool NAME on PATH), a local run skips: it prints
# "1..0 # SKIP WHY" and exits 0. Under CI=true a skip would hide the test, so it fails.
require_root() { [ "$(id -u)" = 0 ] || _check_skip "$1"; }
require_tool() { command -v "$1" >/dev/null || _check_skip "${2:-$1 is not installed}"; }
_check_skip() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $1 (CI=true: not skipping)" >&2
        exit 1
    fi
    echo "1..0 # SKIP $1"
    exit 0
}
