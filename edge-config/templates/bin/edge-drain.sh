#!/bin/sh
# Takes this edge host out of service without dropping a call: Kamailio answers new INVITEs with 503 (the carrier
# tries its next origination URI) while calls in progress go on to their BYE. Done when RTPEngine holds no call, or
# when the drain time has passed (the host is then handed over anyway, and says how many calls it still carried).
#   edge-drain.sh [seconds]   drain; seconds default to edge.drainSeconds ({{DRAIN_SECONDS}})
#   edge-drain.sh --resume    take new calls again (a replacement that was called off)
set -eu
CTL="{{CTL_SOCKET}}"
RTPENGINE_CLI="{{RTPENGINE_CLI}}"
ARG="${1:-{{DRAIN_SECONDS}}}"

# kamcmd exits 0 even when the RPC fails: its output tells.
rpc() {
  out=$(kamcmd -s "$CTL" "$@" 2>&1) || true
  case "$out" in *[Ee]rror*) echo "edge-drain: kamcmd $*: $out" >&2; exit 1 ;; esac
}

# Calls this host carries = RTPEngine's own media sessions; empty when RTPEngine does not answer.
calls_in_progress() {
  rtpengine-ctl -ip "$RTPENGINE_CLI" list numsessions 2>/dev/null | sed -n 's/^Current sessions own: *\([0-9][0-9]*\).*/\1/p'
}

if [ "$ARG" = "--resume" ]; then
  rpc htable.seti edge_state draining 0
  echo "edge-drain: taking new calls again"
  exit 0
fi
case "$ARG" in '' | *[!0-9]*) echo "edge-drain: seconds must be a whole number, not '$ARG'" >&2; exit 2 ;; esac

rpc htable.seti edge_state draining 1
echo "edge-drain: refusing new calls; waiting up to ${ARG}s for the calls in progress"
start=$(date +%s)
last=""
while :; do
  n=$(calls_in_progress)
  elapsed=$(($(date +%s) - start))
  # A count that cannot be read is not zero: keep waiting (fail closed) until the drain time is up.
  if [ "$n" = "0" ]; then
    echo "edge-drain: done: 0 calls in progress after ${elapsed}s"
    exit 0
  fi
  if [ "$elapsed" -ge "$ARG" ]; then
    echo "edge-drain: drain time up after ${elapsed}s with ${n:-an unknown number of} call(s) in progress"
    exit 0
  fi
  if [ "$n" != "$last" ]; then
    echo "edge-drain: ${n:-unknown (RTPEngine does not answer)} call(s) in progress"
    last="$n"
  fi
  sleep 1
done
