#!/usr/bin/env bash
# Installs what the console's browser test drives, idempotently: Debian's Chromium, and
# playwright-core and axe-core (pinned by tests/browser/package-lock.json) in a folder outside
# the clone so that fresh checkouts reuse it. playwright-core never downloads a browser of its own: the test
# launches /usr/bin/chromium.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
lock_dir="$here/../tests/browser"

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing: chromium"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium fonts-liberation >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "the console's browser test needs Node.js 20 or later with npm on PATH" >&2
  exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "the console's browser test needs Node.js 20 or later; this is $(node --version)" >&2
  exit 1
fi

dir="${MEMGATE_BROWSER_ENV:-$HOME/.cache/memgate-browser}"
stamp="$dir/.lock.sha256"
wanted="$(cat "$lock_dir/package.json" "$lock_dir/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$dir/node_modules/playwright-core/package.json" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "preparing the browser test driver in $dir"
  mkdir -p "$dir"
  cp "$lock_dir/package.json" "$lock_dir/package-lock.json" "$dir/"
  # ci: exactly the lock's versions and integrity hashes; no install scripts run.
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$wanted" > "$stamp"
fi
