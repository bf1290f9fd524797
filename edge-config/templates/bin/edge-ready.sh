#!/bin/sh
# Exit 0 when this host can take calls: its topology store, RTPEngine and Kamailio answer, and Kamailio has at least
# one LiveKit SIP node active. A replacement host gets the EIP (and with it new calls) only after this.
set -u
CTL="{{CTL_SOCKET}}"
fail() { echo "edge-ready: $1"; exit 1; }
[ "$(redis-cli -s '{{TOPOS_REDIS_SOCKET}}' ping 2>/dev/null)" = "PONG" ] || fail "topology store does not answer"
rtpengine-ctl -ip '{{RTPENGINE_CLI}}' list numsessions 2>/dev/null | grep -q '^Current sessions own:' || fail "RTPEngine does not answer"
# kamcmd exits 0 even when the RPC fails: its output tells.
case "$(kamcmd -s "$CTL" core.uptime 2>&1)" in *uptime*) ;; *) fail "Kamailio does not answer" ;; esac
case "$(kamcmd -s "$CTL" dispatcher.list 2>&1)" in *"FLAGS: AP"*) ;; *) fail "no LiveKit SIP node active yet" ;; esac
echo "edge-ready: ready"
