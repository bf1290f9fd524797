#!/bin/sh
# Applies a changed allowlist to the running Kamailio without a restart: calls in progress keep their dialogs and media.
set -eu
CTL="{{CTL_SOCKET}}"
# kamcmd exits 0 even when the RPC fails; a reload right after another answers "ongoing reload": retry on any error.
for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  out=$(kamcmd -s "$CTL" permissions.addressReload 2>&1) || true
  case "$out" in *[Ee]rror*) sleep 1 ;; *) echo "edge-reload: allowlist reloaded"; exit 0 ;; esac
done
echo "edge-reload: allowlist not reloaded: $out" >&2
exit 1
