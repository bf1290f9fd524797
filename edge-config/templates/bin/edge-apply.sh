#!/bin/sh
# Applies a rendered edge tree, delivered to every edge host by an SSM association, without dropping a call:
#   nothing changed                 → nothing
#   first apply (Kamailio not up)   → install the tree, start the services
#   only the lists or scripts       → install them, reload the allowlist and caller lists in place (edge-reload.sh)
#   anything else changed           → drain (edge-drain.sh: new calls 503, calls in progress to their BYE), install,
#                                     restart the three services (a restarted Kamailio takes calls again)
# The LiveKit node list is the node sync's: an apply never overwrites it.
#   edge-apply.sh <staged tree>
set -eu
CONFIG_DIR="{{CONFIG_DIR}}"
CTL="{{CTL_SOCKET}}"
STAGED="${1:?usage: edge-apply.sh <staged tree>}"
NODE_LIST="kamailio/dispatcher.list"
# Reloaded in place by edge-reload.sh: the source allowlist and the caller lists.
LISTS="kamailio/db/address kamailio/db/callers"
SERVICES="voice-intake-topos-redis voice-intake-rtpengine voice-intake-kamailio"

# Host facts written at boot: the tree is rendered with placeholders for them.
[ -f "$CONFIG_DIR/host.env" ] || { echo "edge-apply: $CONFIG_DIR/host.env missing: boot has not finished" >&2; exit 1; }
. "$CONFIG_DIR/host.env"
case "$PRIVATE_IP$PUBLIC_IP" in *[!0-9.]* | '') echo "edge-apply: host.env holds no addresses" >&2; exit 1 ;; esac
# (Spelled in two parts so this script, which travels in the same tree, does not rewrite itself.)
MARK=@EDGE
grep -rl "${MARK}_" "$STAGED" | xargs -r sed -i -e "s/${MARK}_PRIVATE_IP@/$PRIVATE_IP/g" -e "s/${MARK}_PUBLIC_IP@/$PUBLIC_IP/g"

changed=$(cd "$STAGED" && find . -type f | sed 's|^\./||' | sort | while read -r file; do
  if [ "$file" = "$NODE_LIST" ] && [ -f "$CONFIG_DIR/$file" ]; then continue; fi
  cmp -s "$file" "$CONFIG_DIR/$file" || echo "$file"
done)
if [ -z "$changed" ]; then
  echo "edge-apply: no change"
  exit 0
fi

install_tree() {
  for file in $changed; do
    mkdir -p "$(dirname "$CONFIG_DIR/$file")"
    # Mode only: a staged mtime older than the installed one would hide a list from db_text's reload (edge-reload.sh).
    cp --preserve=mode "$STAGED/$file" "$CONFIG_DIR/$file.new"
    mv "$CONFIG_DIR/$file.new" "$CONFIG_DIR/$file"
  done
  case " $(echo $changed) " in
    *" systemd/"*)
      cp "$CONFIG_DIR"/systemd/*.service /etc/systemd/system/
      systemctl daemon-reload
      ;;
  esac
}

# kamcmd exits 0 even when the RPC fails: its output tells whether Kamailio is up.
case "$(kamcmd -s "$CTL" core.uptime 2>&1)" in *uptime*) up=1 ;; *) up=0 ;; esac
if [ "$up" = 0 ]; then
  install_tree
  systemctl enable --now $SERVICES
  echo "edge-apply: started"
elif [ -z "$(printf '%s\n' $changed | grep -v -e '^bin/' -e '^kamailio/db/address$' -e '^kamailio/db/callers$')" ]; then
  install_tree
  for list in $LISTS; do
    case " $(echo $changed) " in *" $list "*) "$CONFIG_DIR/bin/edge-reload.sh"; break ;; esac
  done
  echo "edge-apply: applied in place:" $changed
else
  "$CONFIG_DIR/bin/edge-drain.sh"
  install_tree
  systemctl restart $SERVICES
  echo "edge-apply: restarted after drain for" $changed
fi
