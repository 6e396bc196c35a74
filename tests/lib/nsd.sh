# NSD, the reference authoritative server, run by the DNS tests in their own namespaces.
# Sourced after tests/lib/check.sh (uses $tmp, on_exit, on_failure, wait_until).
#
#   nsd_start ADDRESS ZONE ZONEFILE [DIR] [NETNS]
#                           serves ZONE from ZONEFILE on ADDRESS port 53, in the
#                           foreground, as root, with no database, minimal responses; its
#                           files in DIR (default $tmp/nsd); in the named network namespace
#                           NETNS if given (ADDRESS must be reachable from here); sets nsd_pid.
#                           With NSD_TLS_PEM and NSD_TLS_KEY set, also DNS-over-TLS on
#                           ADDRESS port 853 with that certificate.
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables here are for the scripts that source this

nsd_start() {
    local address=$1 zone=$2 zonefile=$3 dir=${4:-$tmp/nsd} netns=${5:-}
    mkdir -p "$dir"
    cp "$zonefile" "$dir/zone"
    local tls=""
    if [ -n "${NSD_TLS_PEM:-}" ]; then
        tls="    ip-address: $address@853
    tls-port: 853
    tls-service-pem: \"$NSD_TLS_PEM\"
    tls-service-key: \"$NSD_TLS_KEY\""
    fi
    cat >"$dir/nsd.conf" <<CONF
server:
    ip-address: $address@53
$tls
    username: ""
    chroot: ""
    zonesdir: "$dir"
    database: ""
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/nsd.log"
    server-count: 1
    minimal-responses: yes
    # Debian builds NSD with response rate limiting on (200/s per source): off, for tests.
    rrl-ratelimit: 0
    hide-version: yes
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: $zone
    zonefile: zone
CONF
    ${netns:+ip netns exec "$netns"} nsd -d -c "$dir/nsd.conf" >"$dir/stdout.log" 2>&1 &
    nsd_pid=$!
    on_exit "kill $nsd_pid 2>/dev/null; wait $nsd_pid 2>/dev/null"
    on_failure "echo '--- nsd ---'; tail -n 20 '$dir/nsd.log' '$dir/stdout.log'"
    _nsd_answers() { kdig +time=1 +retry=0 @"$1" "$2" SOA 2>&1 | grep -q 'status: NOERROR'; }
    wait_until 10 _nsd_answers "$address" "$zone" || die "NSD does not answer for $zone on $address"
}
