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

# A virtualenv for the Python clients the tests use, outside the clone so that fresh
# checkouts reuse it; reinstalled only when the requirements change.
venv="${MEMGATE_PYTHON_ENV:-$HOME/.cache/memgate-python}"
requirements="$(dirname "$0")/python-requirements.txt"
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "preparing python environment in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$stamp"
fi
