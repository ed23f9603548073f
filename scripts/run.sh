#!/usr/bin/env bash
# Runs memgate on the embedded store (config/memgate.toml), installing build prerequisites
# and the embedding model first. Extra arguments go to memgate, e.g. scripts/run.sh check-config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# config/memgate.toml embeds with the local model.
bash scripts/install-model.sh
exec cargo run --release --locked --bin memgate -- "$@"
