#!/usr/bin/env bash
# Measures per-session vector search strategies for memgate's Postgres fact store:
# exact (btree on (org_id, session_id), then sort by cosine distance) against HNSW with
# pgvector 0.8 iterative scans, on 1M synthetic facts per dimension. See bench.py for the details.
#
# Usage: benches/pgvector/search_strategy.sh [options]
#   --dims 384,1536            dimensions to measure, in this order             (env DIMS)
#   --rows 1000000             total rows per dimension, or '384=1000000,1536=300000' (env ROWS)
#   --queries 200              timed queries per session size and strategy     (env QUERIES)
#   --build-budget-min 60      an HNSW build projected to exceed this is cancelled and the dimension
#                              is re-measured at the largest row count projected to fit (env BUILD_BUDGET_MIN)
#   --out FILE                 results file (default benches/pgvector/results-<date>.md)
#   --keep-db                  keep the memgate_bench database afterwards (it is dropped by default)
#   any other bench.py option is passed through: --ef-search 40,100,200, --warmup 20, --seed 42,
#   --latent-dim 64 (intrinsic dimension of the synthetic data), --sigma-session 0.3, ...
# Quick run: benches/pgvector/search_strategy.sh --dims 384 --rows 100000 --queries 50
#
# Works only in the database memgate_bench (dropped and recreated; dropped again at the end),
# on the Postgres at BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432). Safe to re-run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
command_line="benches/pgvector/search_strategy.sh${*:+ $*}"
base_url="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
db=memgate_bench
venv="$HOME/.cache/memgate-bench-venv"

dims="${DIMS:-384,1536}"
rows="${ROWS:-1000000}"
queries="${QUERIES:-200}"
budget="${BUILD_BUDGET_MIN:-60}"
out=""
keep=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dims) dims="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    --build-budget-min) budget="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --keep-db) keep="--keep-db"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done
[ -n "$out" ] || out="$here/results-$(date +%Y-%m-%d).md"

# Postgres with pgvector >= 0.8 (iterative scans). The project's installer is idempotent; only run it
# when something is missing.
if ! psql "$base_url/postgres" -qAtc "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'
      AND string_to_array(default_version, '.')::int[] >= '{0,8}'" 2>/dev/null | grep -q 1; then
  bash "$repo/scripts/install-postgres.sh"
fi

if ! "$venv/bin/python" -c 'import psycopg, numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi

cleanup() {
  if [ -z "$keep" ]; then
    psql "$base_url/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

echo "machine: nproc=$(nproc), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
"$venv/bin/python" -u "$here/bench.py" --base-url "$base_url" --db "$db" --dims "$dims" --rows "$rows" \
  --queries "$queries" --build-budget-min "$budget" --out "$out" --command "$command_line" \
  ${keep:+"$keep"} ${extra[@]+"${extra[@]}"}
echo "results: $out"
