#!/bin/sh
# udhcpc's event script for the DHCP test: records what the server offered in
# $UDHCPC_RECORD instead of configuring the interface.
case "$1" in
    bound|renew)
        {
            echo "ip=$ip"
            echo "router=$router"
            echo "dns=$dns"
            echo "ntpsrv=$ntpsrv"
            echo "domain=$domain"
            echo "lease=$lease"
        } >"$UDHCPC_RECORD"
        ;;
esac
exit 0
