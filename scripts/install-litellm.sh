#!/usr/bin/env bash
# Prepares the LiteLLM proxy that tests/litellm_gateway.rs runs between memgate and the mock
# gateway, idempotently: a virtualenv outside the clone (MEMGATE_LITELLM_ENV, default
# ~/.cache/memgate-litellm) so fresh checkouts reuse it, rebuilt only when
# scripts/litellm-requirements.txt changes. Installs from that file in hash-checking mode, so
# nothing but the reviewed files can land there (see the file for why).
set -euo pipefail

venv="${MEMGATE_LITELLM_ENV:-$HOME/.cache/memgate-litellm}"
requirements="$(cd "$(dirname "$0")" && pwd)/litellm-requirements.txt"
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"

if [ -x "$venv/bin/litellm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi

# The lock's platform wheels are CPython 3.11 ones: another interpreter would fail on a hash
# mismatch deep in pip's output, so say it plainly first.
if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "scripts/litellm-requirements.txt is locked for CPython 3.11, python3 is $(python3 -V 2>&1);" \
    "regenerate the lock as its header says" >&2
  exit 1
fi

echo "preparing the LiteLLM environment in $venv"
start=$(date +%s)
# --clear: a lock installed over an older one would leave the old one's extra packages.
python3 -m venv --clear "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
  --require-hashes -r "$requirements"

# The compromised 1.82.8 shipped a .pth file that ran on every interpreter start; the locked
# set ships none but the venv's own, so any other one means the install is not what was
# reviewed.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
unexpected="$(find "$site" -maxdepth 1 -name '*.pth' ! -name 'distutils-precedence.pth')"
if [ -n "$unexpected" ]; then
  echo "unexpected startup hooks in $venv: $unexpected" >&2
  rm -rf "$venv"
  exit 1
fi

"$venv/bin/python" -c 'import importlib.metadata as m; print("litellm", m.version("litellm"))'
echo "$wanted" > "$stamp"
echo "LiteLLM environment ready in $(( $(date +%s) - start ))s"
