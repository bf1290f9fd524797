#!/usr/bin/env bash
# Installs what `npm test` needs besides the npm packages (`npm ci` brings those): Debian packages (SIP edge, Redis,
# softphone, audio tools), the Python tools in .venv, and LiveKit Server built from the Go module proxy.
# Idempotent: each step checks what is there, says what it installs, and skips what is present. Root (or sudo) is
# needed only when a Debian package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# LiveKit Server: the release the end-to-end suite runs (later ones cannot be built from the module proxy).
LIVEKIT_SERVER_MODULE="github.com/livekit/livekit-server/cmd/server"
LIVEKIT_SERVER_VERSION="1.13.5"

APT_PACKAGES=(
  # SIP edge: Kamailio with the modules the rendered config loads, RTPEngine (+ rtpengine-ctl), sipp
  kamailio kamailio-tls-modules kamailio-extra-modules kamailio-utils-modules kamailio-redis-modules
  rtpengine-daemon rtpengine-utils sip-tester
  redis-server
  # speech for the callers, audio checks
  espeak-ng sox libsox-fmt-all
  # LiveKit SIP's runtime libraries, the softphone, packet captures
  libopus0 libopusfile0 libsoxr0 baresip-core tshark
  # headless browser for the call report test
  chromium
  ca-certificates openssl python3-venv
)

say() { printf 'setup: %s\n' "$*"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_debian_packages() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do installed "$package" || missing+=("$package"); done
  if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages: all ${#APT_PACKAGES[@]} present"
    return
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
      sudo="sudo"
    else
      say "missing Debian packages and not root: run as root, or: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  say "Debian packages: installing ${missing[*]}"
  # Packages start their daemons on install where they can; the tests start their own on loopback, so keep the
  # packaged services from taking 5060, 2223 or 6379.
  local policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ -n "$policy_added" ] && $sudo rm -f /usr/sbin/policy-rc.d
  for service in kamailio rtpengine-daemon ngcp-rtpengine-daemon redis-server; do
    $sudo service "$service" stop >/dev/null 2>&1 || true
  done
}

install_python_tools() {
  local stamp=.venv/.requirements.sha256
  local wanted
  wanted=$(cat requirements-*.txt | sha256sum | cut -d' ' -f1)
  if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    say "Python tools (.venv): present"
    return
  fi
  say "Python tools: installing $(cat requirements-*.txt | grep -v '^#' | tr '\n' ' ')into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  for requirements in requirements-*.txt; do .venv/bin/pip install -q -r "$requirements"; done
  echo "$wanted" >"$stamp"
}

install_livekit_server() {
  if ! command -v go >/dev/null; then
    say "Go is missing: install Go ≥ 1.25 (the LiveKit Server build needs it)" >&2
    exit 1
  fi
  local binary
  binary="$(go env GOPATH)/bin/server"
  if [ -x "$binary" ] && "$binary" --version 2>/dev/null | grep -q " ${LIVEKIT_SERVER_VERSION}\$"; then
    say "LiveKit Server ${LIVEKIT_SERVER_VERSION}: present ($binary)"
    return
  fi
  say "LiveKit Server ${LIVEKIT_SERVER_VERSION}: building with go install (a few minutes the first time)"
  go install "${LIVEKIT_SERVER_MODULE}@v${LIVEKIT_SERVER_VERSION}"
}

install_debian_packages
install_python_tools
install_livekit_server
say "done"
