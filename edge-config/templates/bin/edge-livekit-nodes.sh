#!/bin/sh
# Replaces the LiveKit SIP node list (dispatcher set 1) with the nodes given, then reloads it in the running Kamailio:
# no restart, calls in progress keep going. Run by the node sync (SSM Run Command) whenever LiveKit's hosts change.
#
#   edge-livekit-nodes.sh [~]<ipv4>[:<port>] ...  no argument: no node (new calls get 503 until nodes come back)
#
# A node given with a leading ~ is draining: listed disabled (flag 4), so it is never chosen for a new call nor
# probed back into the rotation, yet its calls can still be hung up from either side.
set -eu
LIST="{{DISPATCHER_LIST}}"
NEW="$LIST.new"
: > "$NEW"
for node in "$@"; do
  flags=0
  case "$node" in "~"*) flags=4; node=${node#"~"} ;; esac
  # Only addresses reach the list: anything else would be a config injection.
  if ! printf '%s' "$node" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}(:[0-9]{1,5})?$'; then
    echo "edge-livekit-nodes: not an IPv4 address[:port]: $node" >&2
    rm -f "$NEW"
    exit 2
  fi
  case "$node" in *:*) ;; *) node="$node:{{DEFAULT_PORT}}" ;; esac
  echo "1 sip:$node;transport={{TRANSPORT}} $flags 0 socket={{SOCKET}}" >> "$NEW"
done
# Kamailio keeps its old list when given an empty one: "no node" is a disabled entry outside the LiveKit set.
[ $# -gt 0 ] || echo "{{NO_NODE_ENTRY}}" > "$NEW"
mv "$NEW" "$LIST"
# kamcmd exits 0 even when the RPC fails; a reload right after another answers "ongoing reload": retry on any error.
for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  out=$(kamcmd -s "{{CTL_SOCKET}}" dispatcher.reload 2>&1) || true
  case "$out" in
    *[Ee]rror*) sleep 1 ;;
    *) echo "edge-livekit-nodes: $# LiveKit SIP node(s): $*"; exit 0 ;;
  esac
done
echo "edge-livekit-nodes: list written but not reloaded: $out" >&2
exit 1
