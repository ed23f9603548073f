#!/usr/bin/env bash
# Whole-path load comparison, in one run, loopback only, bounded in time:
#   models_*    GET /v1/models, direct and through memgate (Pingora pass-through)
#   direct      client -> mock gateway
#   passthrough client -> memgate -> mock gateway (chat completion without memory_id)
#   memory      client -> memgate -> mock gateway (memory_id: retrieval + injection; the
#               turn is not stored, so every request sees the same session). Every request
#               asks a different question, so no query vector comes from the cache.
#   memory_store  the same with the turn stored: its outbox write happens before the last
#               bytes of the answer are sent (a question, so the session gains no facts)
# Usage: scripts/loadtest.sh [seconds per run, default 10] [connections, default 8]
#        EMBEDDINGS=gateway scripts/loadtest.sh   (query vectors from the mock's /v1/embeddings
#                                                  instead of the local model, the default)
#        FACTS=50 scripts/loadtest.sh   (facts in the session, default 1000)
#        PERF_OUT=/tmp/memgate.perf scripts/loadtest.sh   (also profiles the memory run)
#        STORE=postgres scripts/loadtest.sh   (memgate on Postgres + pgvector, in a scratch
#                                              database that is dropped afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNECTIONS="${2:-8}"
THREADS=$(( CONNECTIONS < 2 ? 1 : 2 ))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/memgate-target}"

if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --locked --bin memgate --example mock_gateway >&2
EMBEDDINGS="${EMBEDDINGS:-local}"
FACTS="${FACTS:-1000}"
if [ "$EMBEDDINGS" = local ]; then
  bash scripts/install-model.sh >&2
  EMBEDDINGS_TOML='provider = "local"'
else
  EMBEDDINGS_TOML='provider = "gateway"
dimensions = 1536'
fi
BIN="$CARGO_TARGET_DIR/release"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(free_port); PROXY_PORT=$(free_port); ADMIN_PORT=$(free_port)
WORK=$(mktemp -d)
PG_SERVER="${MEMGATE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
PG_DB="memgate_load_$$"
cleanup() {
  kill "${MOCK_PID:-}" "${MG_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"
  if [ "${STORE:-sqlite}" = postgres ]; then psql "$PG_SERVER/postgres" -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

"$BIN/examples/mock_gateway" --listen "127.0.0.1:$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
if [ "${STORE:-sqlite}" = postgres ]; then
  bash scripts/install-postgres.sh >&2
  psql "$PG_SERVER/postgres" -qAtc "CREATE DATABASE $PG_DB" >/dev/null
  STORAGE_URL="$PG_SERVER/$PG_DB"
else
  STORAGE_URL="sqlite://$WORK/memgate.db"
fi
cat >"$WORK/memgate.toml" <<TOML
[proxy]
listen = "127.0.0.1:$PROXY_PORT"
threads = 1
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[upstream]
url = "http://127.0.0.1:$MOCK_PORT"
[storage]
url = "$STORAGE_URL"
[embeddings]
$EMBEDDINGS_TOML
[[auth.keys]]
key = "sk-load"
org = "load"
role = "admin"
TOML
MEMGATE_LOG=warn "$BIN/memgate" --config "$WORK/memgate.toml" >"$WORK/memgate.log" 2>&1 &
MG_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS -X POST "http://127.0.0.1:$ADMIN_PORT/memory/session/create" -H "Authorization: Bearer sk-load" \
  -d '{"session_name":"user-load","engine_name":"mem0"}' >/dev/null
# A session with history: FACTS distinct facts, added 20 to a request.
python3 - "$FACTS" >"$WORK/facts.jsonl" <<'PY'
import json, sys
people = ["Amara", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas",
          "Keiko", "Lars", "Mei", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tariq"]
doings = ["booked a table at", "borrowed a ladder from", "painted a mural near", "lost an umbrella at",
          "filmed a documentary about", "sold a bicycle outside", "fixed the printer at", "planted tulips behind"]
places = ["the harbour", "the old library", "the cathedral", "the night market", "the tram depot",
          "the botanical garden", "the ice rink", "the observatory"]
n = int(sys.argv[1])
# 1,280 combinations of person, deed and place before one repeats: the rest of a fact alone
# would be a near-duplicate of its twin, which memgate merges.
facts = [f"{people[i % 20]} {doings[i // 20 % 8]} {places[i // 160 % 8]} in {1900 + i} with project Atlas{i}"
         for i in range(n)]
for start in range(0, n, 20):
    text = ". ".join(facts[start:start + 20]) + "."
    print(json.dumps({"memory_id": "user-load", "messages": [{"role": "user", "content": text}]}))
PY
while read -r body; do
  curl -fsS -X POST "http://127.0.0.1:$ADMIN_PORT/memory/session/add" -H "Authorization: Bearer sk-load" \
    -d "$body" >/dev/null
done <"$WORK/facts.jsonl"
STORED=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/memory/session/user-load" -H "Authorization: Bearer sk-load" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["fact_count"])')

rss_kib() { awk "/^$1:/ {print \$2}" "/proc/$MG_PID/status"; }
RSS_IDLE=$(rss_kib VmRSS)

# {n}: the varied script puts a request counter there, so each question is new.
PLAIN='{"model":"mock-model","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"What did Elif do with project Atlas{n}?"}]}'
MEMORY='{"model":"mock-model","memory_id":"user-load","store_memory":false,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"What did Elif do with project Atlas{n}?"}]}'
MEMORY_STORE='{"model":"mock-model","memory_id":"user-load","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Which project runs in region R7?"}]}'

run_get() { # name url
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$2" >"$WORK/$1.txt"
}
run() { # name url body
  BODY="$3" KEY=sk-load wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s benches/load/chat_varied.lua "$2" >"$WORK/$1.txt"
  # warm-up is the first second of each run; wrk's percentiles cover the whole run
}
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.3f", v}'; }
pct() { grep -E "^ +$2%" "$WORK/$1.txt" | awk '{print $2}' | to_ms; }
rps() { grep "Requests/sec" "$WORK/$1.txt" | awk '{print $2}'; }

run_get models_direct "http://127.0.0.1:$MOCK_PORT/v1/models"
run_get models_proxied "http://127.0.0.1:$PROXY_PORT/v1/models"
run direct "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "$PLAIN"
run passthrough "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" "$PLAIN"
# PERF_OUT=file records a CPU profile of memgate during the memory run (perf report -i file).
if [ -n "${PERF_OUT:-}" ]; then
  perf record -F 999 -g -p "$MG_PID" -o "$PERF_OUT" >/dev/null 2>&1 &
  PERF_PID=$!
fi
run memory "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" "$MEMORY"
if [ -n "${PERF_PID:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
run memory_store "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" "$MEMORY_STORE"

injected=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^memgate_context_injected_total/ {print $2}')
degraded=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^memgate_retrieval_degraded_total/ {print $2}')
echo "machine: $(nproc) cores, $(uname -srm); wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s per run, loopback; store: ${STORE:-sqlite}; embeddings: $EMBEDDINGS; session: $STORED facts"
row() { # run baseline
  p50=$(pct "$1" 50); p99=$(pct "$1" 99); b50=$(pct "$2" 50); b99=$(pct "$2" 99)
  printf "%-15s %9s %9s %10s %12s %12s\n" "$1" "$p50" "$p99" "$(rps "$1")" \
    "$(awk -v a="$p50" -v b="$b50" 'BEGIN{printf "%+.3f", a-b}')" "$(awk -v a="$p99" -v b="$b99" 'BEGIN{printf "%+.3f", a-b}')"
}
printf "%-15s %9s %9s %10s %12s %12s\n" run p50_ms p99_ms req_s p50_added p99_added
row models_direct models_direct
row models_proxied models_direct
row direct direct
row passthrough direct
row memory direct
row memory_store direct
echo "memory run: context injected $injected times, degraded $degraded times"
echo "memory path added over the same request without memory_id: p50 $(awk -v a="$(pct memory 50)" -v b="$(pct passthrough 50)" 'BEGIN{printf "%+.3f", a-b}') ms, p99 $(awk -v a="$(pct memory 99)" -v b="$(pct passthrough 99)" 'BEGIN{printf "%+.3f", a-b}') ms"
echo "memgate resident memory: $((RSS_IDLE / 1024)) MiB idle with the session loaded, $(( $(rss_kib VmRSS) / 1024 )) MiB after the runs, peak $(( $(rss_kib VmHWM) / 1024 )) MiB"
for r in models_direct models_proxied direct passthrough memory memory_store; do
  errors=$(grep -E "Non-2xx|Socket errors" "$WORK/$r.txt" || true)
  [ -n "$errors" ] && echo "$r: $errors"
done
exit 0
