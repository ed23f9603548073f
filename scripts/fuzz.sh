#!/usr/bin/env bash
# Fuzzes the request rewriter and the response tee (libFuzzer through cargo-fuzz) for a
# bounded time each, from the seeds in fuzz/seeds/, and prints what each run did.
# Usage: scripts/fuzz.sh [seconds per target, default 60] [targets…, default: rewrite sse]
# Exits non-zero on a crash, leaving the input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("${@:-rewrite sse}")
# shellcheck disable=SC2206
TARGETS=(${TARGETS[*]})

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked >&2
fi
# libFuzzer's instrumentation needs unstable compiler flags; the stable toolchain allows them
# under RUSTC_BOOTSTRAP. The fuzz build keeps its own target directory.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${MEMGATE_FUZZ_TARGET_DIR:-$HOME/.cache/memgate-fuzz-target}"

status=0
for target in "${TARGETS[@]}"; do
  corpus="$(mktemp -d)"
  cp fuzz/seeds/"$target"/* "$corpus"/
  log="$(mktemp)"
  echo "== $target: ${SECONDS_PER_TARGET}s" >&2
  if cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 >"$log" 2>&1; then
    outcome="no crash"
  else
    outcome="CRASH (see fuzz/artifacts/$target/)"
    status=1
    tail -40 "$log" >&2
  fi
  runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -m1 -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  peak=$(grep -m1 -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  corpus_size=$(find "$corpus" -type f | wc -l)
  echo "$target: $outcome; ${runs} executions in ${SECONDS_PER_TARGET}s (${rate}/s), corpus ${corpus_size} inputs, peak RSS ${peak} MB"
  rm -rf "$corpus" "$log"
done
exit "$status"
