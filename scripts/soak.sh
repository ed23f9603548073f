#!/usr/bin/env bash
# Soak: N concurrent streaming clients, each in its own memory session, through memgate
# (release build, embedded SQLite store) in front of the mock gateway, loopback only, for a
# number of requests (or minutes). The driver samples memgate's resident memory and open
# descriptors every 1,000 finished requests; after the load the script waits for the outbox to
# drain, pauses idle, and samples once more. Then it checks that every completed turn was
# stored: its outbox row done and its fact added. Each session keeps its newest F facts (by
# default what the first 1,000 requests give it), so that the data, and with it the vector
# cache, stops growing once the first sample is taken, and memory growth after it means a leak
# (the history keeps every ADD).
#
# Usage: scripts/soak.sh [--streams N (200)] [--requests R (10000) | --minutes M]
#                        [--pause S between a client's requests (0)] [--idle S (30)]
#                        [--max-facts F (1000 / N)] [--store-lock S (0)]
# e.g.   scripts/soak.sh --streams 200 --requests 10000
#        scripts/soak.sh --streams 200 --requests 1000 --store-lock 10
# --store-lock S: one second into the load, another process holds the store's write lock
# (BEGIN EXCLUSIVE) for S seconds, a store outage under traffic: every completed turn must
# still be stored.
#
# Fails if a completed turn is missing; if resident memory at the end of the load, or after
# the idle pause, is more than 25% above the figure after the first 1,000 requests (caches,
# pools and allocator arenas fill during those, a leak keeps growing); or if descriptors grew
# past the first sample's by more than a few.
set -euo pipefail
cd "$(dirname "$0")/.."
N=200 REQUESTS=10000 MINUTES=0 PAUSE=0 IDLE=30 MAX_FACTS="" WARMUP=1000 STORE_LOCK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --streams) N="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --minutes) MINUTES="$2"; REQUESTS=0; shift 2 ;;
    --pause) PAUSE="$2"; shift 2 ;;
    --idle) IDLE="$2"; shift 2 ;;
    --max-facts) MAX_FACTS="$2"; shift 2 ;;
    --store-lock) STORE_LOCK="$2"; shift 2 ;;
    *) echo "usage: $0 [--streams N] [--requests R | --minutes M] [--pause S] [--idle S] [--max-facts F] [--store-lock S]" >&2; exit 2 ;;
  esac
done
MAX_FACTS="${MAX_FACTS:-$(( WARMUP / N > 0 ? WARMUP / N : 1 ))}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/memgate-target}"
cargo build --release --locked --bin memgate --example mock_gateway >&2
BIN="$CARGO_TARGET_DIR/release"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(free_port); PROXY_PORT=$(free_port); ADMIN_PORT=$(free_port)
WORK=$(mktemp -d)
cleanup() { kill "${DRIVER_PID:-}" "${MOCK_PID:-}" "${MG_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/examples/mock_gateway" --listen "127.0.0.1:$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
cat >"$WORK/memgate.toml" <<TOML
[proxy]
listen = "127.0.0.1:$PROXY_PORT"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[upstream]
url = "http://127.0.0.1:$MOCK_PORT"
[storage]
url = "sqlite://$WORK/memgate.db"
[embeddings]
dimensions = 1536
[memory]
# These sentences differ in three numbered words only, and the mock's hashed embeddings can
# put such words in the same dimensions: near-duplicate deduplication is off, so that each
# turn's fact is its own ADD, which is what is counted.
dedup_threshold = 1.0
[worker]
journal_path = "$WORK/journal.jsonl"
[internal]
api_key = "sk-internal"
[[auth.keys]]
key = "sk-soak-admin"
org = "soak"
role = "admin"
TOML
MEMGATE_LOG=warn "$BIN/memgate" serve --config "$WORK/memgate.toml" >"$WORK/memgate.log" 2>&1 &
MG_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

sessions=""
for i in $(seq 1 "$N"); do
  curl -fs -X POST "http://127.0.0.1:$ADMIN_PORT/memory/session/create" -H "Authorization: Bearer sk-soak-admin" \
    -d "{\"session_name\": \"soak-$i\", \"engine_name\": \"mem0\", \"config\": {\"max_facts\": $MAX_FACTS}}" >/dev/null
  sessions="${sessions:+$sessions,}soak-$i"
done

python3 scripts/soak_driver.py --port "$PROXY_PORT" --key sk-soak-admin --sessions "$sessions" \
  --requests "$REQUESTS" --seconds "$(( MINUTES * 60 ))" --pause "$PAUSE" --pid "$MG_PID" \
  --every "$WARMUP" >"$WORK/driver.json" &
DRIVER_PID=$!
if [ "$STORE_LOCK" != "0" ]; then
  sleep 1
  python3 - "$WORK/memgate.db" "$STORE_LOCK" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
PY
  echo "held the store's write lock for $STORE_LOCK s" >&2
fi
wait "$DRIVER_PID"

# Every completed turn must be in the outbox or ingested: wait for the outbox to drain.
for _ in $(seq 1 600); do
  pending=$(curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^memgate_outbox_rows\{state="pending"\}/ {print $2}')
  [ "${pending:-1}" = "0" ] && break
  sleep 1
done
drained="$(awk '/VmRSS/ {print $2}' "/proc/$MG_PID/status") $(find "/proc/$MG_PID/fd" -mindepth 1 | wc -l)"
sleep "$IDLE"
idle="$(awk '/VmRSS/ {print $2}' "/proc/$MG_PID/status") $(find "/proc/$MG_PID/fd" -mindepth 1 | wc -l)"
curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^memgate_(outbox_rows|turns_|ingest_failures|journal_turns)' | tr '\n' ' '
echo
cp "$WORK/memgate.log" "${SOAK_LOG:-/tmp/memgate-soak.log}"
python3 - "$WORK/driver.json" "$ADMIN_PORT" "$WARMUP" "$drained" "$idle" "$IDLE" <<'PY'
import json, sys, urllib.request
driver, admin, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3])
drained, idle = (tuple(int(x) for x in a.split()) for a in sys.argv[4:6])
idle_seconds = sys.argv[6]
run = json.load(open(driver))
results, samples = run["clients"], run["samples"]
def added(session):
    """Texts of the session's ADD events: every fact a turn produced, trimmed or not."""
    texts, offset = set(), 0
    while True:
        req = urllib.request.Request(
            f"http://127.0.0.1:{admin}/memory/session/{session}/history?limit=500&offset={offset}",
            headers={"Authorization": "Bearer sk-soak-admin"})
        page = json.load(urllib.request.urlopen(req))
        texts.update(e["new_text"] for e in page["history"] if e["event"] == "ADD")
        offset += len(page["history"])
        if offset >= page["total"] or not page["history"]:
            return texts
def outbox_done():
    req = urllib.request.Request(f"http://127.0.0.1:{admin}/memory/outbox?state=done&limit=1",
                                 headers={"Authorization": "Bearer sk-soak-admin"})
    return json.load(urllib.request.urlopen(req))["total"]
sent = sum(r["sent"] for r in results)
completed = sum(r["completed"] for r in results)
errors = sum(r["errors"] for r in results)
stored = missing = 0
for r in results:
    have = added(r["session"])
    # Each client's turns 0..sent-1; an errored turn may or may not have completed.
    wanted = {f"Soak marker {r['session']}n{i} notes k{i}a and k{i}b" for i in range(r["sent"])}
    found = len(wanted & have)
    stored += found
    missing += max(0, r["completed"] - found)
done = outbox_done()
seconds = samples[-1]["seconds"]
print(f"{len(results)} streams, {sent} turns sent in {seconds:g} s, {completed} completed, "
      f"{errors} errors; {done} outbox rows done, {stored} turns' facts added, "
      f"{missing} completed turns missing")
print("RSS MiB by requests finished: " + ", ".join(
    f"{s['requests']}: {s['rss_kib'] / 1024:.1f}" for s in samples)
      + f"; drained: {drained[0] / 1024:.1f}; after {idle_seconds} s idle: {idle[0] / 1024:.1f}")
print("fds by requests finished: " + ", ".join(f"{s['requests']}: {s['fds']}" for s in samples)
      + f"; drained: {drained[1]}; idle: {idle[1]}")
ok = True
if missing or done < completed:
    print("FAIL: completed turns were not stored"); ok = False
base = next((s for s in samples if s["requests"] >= warmup), None)
if base is None:
    print(f"FAIL: fewer than {warmup} requests finished: no baseline"); ok = False
else:
    end = samples[-1]
    for label, rss in (("at the end of the load", end["rss_kib"]), ("after the idle pause", idle[0])):
        if rss > base["rss_kib"] * 1.25:
            print(f"FAIL: resident memory {label} ({rss} KiB) is more than 25% above the figure "
                  f"after {base['requests']} requests ({base['rss_kib']} KiB)"); ok = False
    # After the load the clients' connections are closed and only the pools' idle ones are
    # left: more descriptors then than under full load after the first sample means some were
    # never closed (a few come and go: the journal, the database's WAL).
    if idle[1] > base["fds"] + 8:
        print(f"FAIL: descriptors grew from {base['fds']} after {base['requests']} requests "
              f"to {idle[1]} after the idle pause"); ok = False
sys.exit(0 if ok else 1)
PY
