#!/bin/sh
# Applies a changed allowlist / LiveKit node list to the running Kamailio without a restart:
# calls in progress keep their dialogs and media.
set -eu
CTL="{{CTL_SOCKET}}"
kamcmd -s "$CTL" permissions.addressReload
kamcmd -s "$CTL" dispatcher.reload
