#!/usr/bin/env bash
# Installs what building and testing memgate needs on a fresh Debian machine, idempotently.
# Pingora's build needs cmake (libz-ng-sys).
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
