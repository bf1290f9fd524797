#!/bin/sh
# Applies a changed allowlist and caller lists to the running Kamailio without a restart: calls in progress keep their
# dialogs and media.
set -eu
CTL="{{CTL_SOCKET}}"
ADDRESS_FILE="{{ADDRESS_FILE}}"
CALLERS_FILE="{{CALLERS_FILE}}"

# db_text reloads a table only when the file's mtime, in whole seconds, is newer than that of the copy it holds: a list
# rewritten within the second of its last load would go unseen and the old list stay in force. Stamp each list one
# second past its own mtime (newer than any copy loaded from it), once that second has come: never into the future,
# unless the file's mtime already is (a skewed clock), where only a stamp past it can be seen.
stamp_newer() {
  mtime=$(stat -c %Y "$1")
  waited=0
  while [ "$(date +%s)" -le "$mtime" ] && [ "$waited" -lt 30 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  touch -m -d "@$((mtime + 1))" "$1"
}
stamp_newer "$ADDRESS_FILE"
stamp_newer "$CALLERS_FILE"

# kamcmd exits 0 even when the RPC fails; a reload right after another answers "ongoing reload": retry on any error.
reload() {
  for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    out=$(kamcmd -s "$CTL" "$@" 2>&1) || true
    case "$out" in *[Ee]rror*) sleep 1 ;; *) return 0 ;; esac
  done
  echo "edge-reload: $* failed: $out" >&2
  return 1
}
reload permissions.addressReload || exit 1
echo "edge-reload: allowlist reloaded"
reload htable.reload callers || exit 1
echo "edge-reload: caller lists reloaded"
