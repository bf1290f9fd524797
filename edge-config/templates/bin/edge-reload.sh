#!/bin/sh
# Applies a changed allowlist and caller lists to the running Kamailio without a restart: calls in progress keep their
# dialogs and media.
set -eu
CTL="{{CTL_SOCKET}}"
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
