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
# checkouts reuse it; rebuilt only when the requirements change. The requirements are
# hash-locked: nothing but the reviewed files can land there.
venv="${MEMGATE_PYTHON_ENV:-$HOME/.cache/memgate-python}"
requirements="$(dirname "$0")/python-requirements.txt"
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  # The lock's platform wheels are CPython 3.11 ones: another interpreter would fail on a
  # hash mismatch deep in pip's output, so say it plainly first.
  if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "scripts/python-requirements.txt is locked for CPython 3.11, python3 is $(python3 -V 2>&1);" \
      "regenerate the lock as its header says" >&2
    exit 1
  fi
  echo "preparing python environment in $venv"
  # --clear: a lock installed over an older one would leave the old one's extra packages.
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --require-hashes -r "$requirements"
  echo "$wanted" > "$stamp"
fi
