#!/usr/bin/env bash
# Whole-path load comparison, in one run, loopback only, bounded in time. Every leg has the
# same upstream, the mock gateway; the anchor is an nginx hop (proxy_pass, upstream keep-alive,
# one worker as memgate's proxy has one thread here) in front of it:
#   get_*       GET /v1/models: direct, through nginx, through memgate (Pingora pass-through)
#   chat_*      a chat completion without memory_id: direct, through nginx, through memgate
#   embed_direct  the embedding call memgate makes for a query (base64, as memgate asks), straight
#               to the mock: the round trip the memory leg cannot avoid with gateway embeddings
#   memory      client -> memgate -> mock gateway (memory_id: retrieval + injection; the
#               turn is not stored, so every request sees the same session). Every request
#               asks a different question, so no query vector comes from the cache.
#   responses_*, messages_*  the same question on OpenAI's Responses API and Anthropic's
#               Messages API: direct, and through memgate with memory_id (not stored), so
#               the memory path of each API shape is measured beside the chat one
#   memory_store  the same with the turn stored: its outbox write happens before the last
#               bytes of the answer are sent (a question, so the session gains no facts); run
#               after the other legs, as the worker ingests its turns for a while afterwards
#   ttfb_*      a streamed chat completion, one request at a time: time to its first event,
#               direct, through nginx and through memgate (benches/load/ttfb.py)
# Usage: scripts/loadtest.sh [seconds per run, default 10] [connections, default 8]
#        ROUNDS=5 scripts/loadtest.sh   (rounds of every leg, default 3; medians over them)
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

missing=""
command -v wrk >/dev/null || missing="$missing wrk"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
if [ -n "$missing" ]; then
  echo "installing$missing" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  # shellcheck disable=SC2086
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq $missing >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
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
MOCK_PORT=$(free_port); PROXY_PORT=$(free_port); ADMIN_PORT=$(free_port); NGINX_PORT=$(free_port)
WORK=$(mktemp -d)
PG_SERVER="${MEMGATE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
PG_DB="memgate_load_$$"
cleanup() {
  kill "${MOCK_PID:-}" "${MG_PID:-}" "${NGINX_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"
  if [ "${STORE:-sqlite}" = postgres ]; then psql "$PG_SERVER/postgres" -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

"$BIN/examples/mock_gateway" --listen "127.0.0.1:$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream mock {
    server 127.0.0.1:$MOCK_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Streamed as memgate streams: each chunk goes on as it arrives.
      proxy_buffering off;
    }
  }
}
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
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
RESPONSES_PLAIN='{"model":"mock-model","instructions":"You are helpful.","input":"What did Elif do with project Atlas{n}?"}'
RESPONSES_MEMORY='{"model":"mock-model","memory_id":"user-load","store_memory":false,"instructions":"You are helpful.","input":"What did Elif do with project Atlas{n}?"}'
MESSAGES_PLAIN='{"model":"mock-model","max_tokens":256,"system":"You are helpful.","messages":[{"role":"user","content":"What did Elif do with project Atlas{n}?"}]}'
MESSAGES_MEMORY='{"model":"mock-model","memory_id":"user-load","store_memory":false,"max_tokens":256,"system":"You are helpful.","messages":[{"role":"user","content":"What did Elif do with project Atlas{n}?"}]}'
MEMORY_STORE='{"model":"mock-model","memory_id":"user-load","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Which project runs in region R7?"}]}'

ROUNDS="${ROUNDS:-3}"
# CPU time (user + system, in clock ticks) of the process a leg is served by, over its run:
# on this kind of machine steadier than latency. The proxy legs count the proxy's alone.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
serving_pid() { # leg
  case $1 in
    *_nginx) echo "$NGINX_WORKER" ;;
    *_direct) echo "$MOCK_PID" ;;
    *) echo "$MG_PID" ;;
  esac
}
measured() { # name command...
  local name=$1 pid before; shift
  pid=$(serving_pid "$name"); before=$(ticks "$pid")
  "$@" >"$WORK/$name.$ROUND.txt"
  echo $(( $(ticks "$pid") - before )) >"$WORK/$name.$ROUND.cpu"
}
run_get() { # name url
  measured "$1" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$2"
}
run() { # name url body
  BODY="$3" KEY=sk-load measured "$1" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s benches/load/chat_varied.lua "$2"
}
EMBED='{"model":"text-embedding-3-small","input":["What did Elif do with project Atlas{n}?"],"dimensions":1536,"encoding_format":"base64"}'
STREAM='{"model":"mock-model","stream":true,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"What did Elif do with project Atlas?"}]}'
for port in "$MOCK_PORT" "$NGINX_PORT"; do
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1 && break; sleep 0.1; done
done
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)

# First, while nothing else runs: the memory_store leg leaves turns for the worker to ingest.
TTFB_COUNT="${TTFB_COUNT:-400}"
ttfb() { python3 benches/load/ttfb.py "127.0.0.1:$1" /v1/chat/completions "$STREAM" "$TTFB_COUNT" sk-load; }
TTFB_DIRECT=$(ttfb "$MOCK_PORT"); TTFB_NGINX=$(ttfb "$NGINX_PORT"); TTFB_MEMGATE=$(ttfb "$PROXY_PORT")
# PERF_OUT=file records a CPU profile of memgate during the memory runs (perf report -i file).
if [ -n "${PERF_OUT:-}" ]; then
  perf record -F 999 -g -p "$MG_PID" -o "$PERF_OUT" >/dev/null 2>&1 &
  PERF_PID=$!
fi
for ROUND in $(seq 0 $((ROUNDS - 1))); do
  run_get get_direct "http://127.0.0.1:$MOCK_PORT/v1/models"
  run_get get_nginx "http://127.0.0.1:$NGINX_PORT/v1/models"
  run_get get_memgate "http://127.0.0.1:$PROXY_PORT/v1/models"
  run chat_direct "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "$PLAIN"
  run chat_nginx "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" "$PLAIN"
  run chat_memgate "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" "$PLAIN"
  run embed_direct "http://127.0.0.1:$MOCK_PORT/v1/embeddings" "$EMBED"
  run memory "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" "$MEMORY"
  run responses_direct "http://127.0.0.1:$MOCK_PORT/v1/responses" "$RESPONSES_PLAIN"
  run responses_memory "http://127.0.0.1:$PROXY_PORT/v1/responses" "$RESPONSES_MEMORY"
  run messages_direct "http://127.0.0.1:$MOCK_PORT/v1/messages" "$MESSAGES_PLAIN"
  run messages_memory "http://127.0.0.1:$PROXY_PORT/v1/messages" "$MESSAGES_MEMORY"
done
# Last, as each stored turn leaves the worker ingesting it after the run: interleaved with the
# legs above, that work would be measured in theirs.
for ROUND in $(seq 0 $((ROUNDS - 1))); do
  run memory_store "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" "$MEMORY_STORE"
done
if [ -n "${PERF_PID:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi

injected=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^memgate_context_injected_total/ {print $2}')
degraded=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^memgate_retrieval_degraded_total/ {print $2}')
echo "machine: $(nproc) cores, $(uname -srm); wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s per run, $ROUNDS rounds (medians over them), loopback; store: ${STORE:-sqlite}; embeddings: $EMBEDDINGS; session: $STORED facts"
python3 benches/load/summarise.py "$WORK" "$ROUNDS" "$(getconf CLK_TCK)"
echo "memory run: context injected $injected times, degraded $degraded times"
printf "streamed chat, time to first event over %s requests one at a time (median / p90 ms): direct %s / %s, nginx %s / %s, memgate %s / %s; memgate over direct: %+.3f ms (%.2fx)\n" \
  "$TTFB_COUNT" $TTFB_DIRECT $TTFB_NGINX $TTFB_MEMGATE \
  "$(awk -v a="${TTFB_MEMGATE%% *}" -v b="${TTFB_DIRECT%% *}" 'BEGIN{print a-b}')" \
  "$(awk -v a="${TTFB_MEMGATE%% *}" -v b="${TTFB_DIRECT%% *}" 'BEGIN{print a/b}')"
echo "memgate resident memory: $((RSS_IDLE / 1024)) MiB idle with the session loaded, $(( $(rss_kib VmRSS) / 1024 )) MiB after the runs, peak $(( $(rss_kib VmHWM) / 1024 )) MiB"
exit 0
