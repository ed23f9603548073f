#!/usr/bin/env bash
# The project's test command: prepares the machine, checks formatting and lints, runs every
# test. README.md and .ci/run both use it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/install-litellm.sh
bash scripts/install-postgres.sh
bash scripts/install-arcadedb.sh
bash scripts/install-model.sh
bash scripts/install-browser.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  # Doc tests first: the runner's closing line must be the full suite's.
  cargo test --locked --doc
  # The black-box tests once more on Postgres + pgvector (the cognee engine's graph on a Bolt
  # server); the ones that always use Postgres, and the store contract (which runs each test
  # on both stores itself), run in the full pass below.
  MEMGATE_TEST_STORE=postgres cargo nextest run --locked --no-fail-fast \
    -E 'kind(test) and not binary(postgres_only) and not binary(store_faults) and not binary(store_contract)'
  cargo nextest run --locked --no-fail-fast
else
  MEMGATE_TEST_STORE=postgres cargo test --locked --no-fail-fast --tests
  cargo test --locked --no-fail-fast
fi
