#!/usr/bin/env bash
# Soak: N concurrent streaming sessions for M minutes through memgate (release build, embedded
# store) in front of the mock gateway, loopback only. Samples memgate's resident memory and
# open descriptors every 10 s; at the end waits for the outbox to drain and checks that every
# completed turn was stored: its outbox row done and its fact added (each session keeps its
# newest 200 facts, so that the data, and with it the vector cache, stops growing and memory
# growth means a leak; the history keeps every ADD).
# Usage: scripts/soak.sh [sessions N, default 16] [minutes M, default 5] [pause between a
#        client's requests in seconds, default 0.2]
# Fails if a completed turn is missing, if resident memory in the last third of the run is
# above the middle third's by more than 10% (and 8 MiB): caches and allocator arenas fill
# during the first minutes, a leak keeps growing; or if descriptors grew.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-16}"
MINUTES="${2:-5}"
PAUSE="${3:-0.2}"
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
    -d "{\"session_name\": \"soak-$i\", \"engine_name\": \"mem0\", \"config\": {\"max_facts\": 200}}" >/dev/null
  sessions="${sessions:+$sessions,}soak-$i"
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$MG_PID/status"; }
fds() { find "/proc/$MG_PID/fd" -mindepth 1 | wc -l; }
seconds=$(( MINUTES * 60 ))
python3 scripts/soak_driver.py 127.0.0.1 "$PROXY_PORT" sk-soak-admin "$sessions" "$seconds" "$PAUSE" >"$WORK/driver.json" &
DRIVER_PID=$!
samples="$WORK/samples"
start=$(date +%s)
while kill -0 "$DRIVER_PID" 2>/dev/null; do
  echo "$(( $(date +%s) - start )) $(rss) $(fds)" >>"$samples"
  sleep 10
done
wait "$DRIVER_PID"
echo "$(( $(date +%s) - start )) $(rss) $(fds)" >>"$samples"

# Every completed turn must be in the outbox or ingested: wait for the outbox to drain.
for _ in $(seq 1 600); do
  pending=$(curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^memgate_outbox_rows\{state="pending"\}/ {print $2}')
  [ "${pending:-1}" = "0" ] && break
  sleep 1
done
curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^memgate_(outbox_rows|turns_|ingest_failures|journal_turns)' | tr '\n' ' '
echo
cp "$WORK/memgate.log" "${SOAK_LOG:-/tmp/memgate-soak.log}"
python3 - "$WORK/driver.json" "$samples" "$ADMIN_PORT" "$MINUTES" <<'PY'
import json, sys, urllib.request
driver, samples_path, admin, minutes = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
results = json.load(open(driver))
samples = [tuple(int(x) for x in line.split()) for line in open(samples_path)]
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
third = max(1, len(samples) // 3)
middle, last = samples[third:2 * third] or samples, samples[-third:]
mean = lambda xs: sum(x[1] for x in xs) / len(xs)
rss_middle, rss_last = mean(middle), mean(last)
rss_max = max(s[1] for s in samples)
after_first_minute = [s for s in samples if s[0] >= 60] or samples
fd_start, fd_end = after_first_minute[0][2], samples[-1][2]
print(f"duration {minutes:g} min, {len(results)} sessions: {sent} turns sent, {completed} completed, "
      f"{errors} errors; {done} outbox rows done, {stored} turns' facts added, "
      f"{missing} completed turns missing")
print(f"RSS KiB: first sample {samples[0][1]}, after 1 min {after_first_minute[0][1]}, "
      f"mean of the middle third {rss_middle:.0f}, of the last third {rss_last:.0f}, max {rss_max}, "
      f"end {samples[-1][1]}; fds: after 1 min {fd_start}, end {fd_end}")
growth = rss_last - rss_middle
ok = True
if missing or done < completed:
    print("FAIL: completed turns were not stored"); ok = False
if growth > max(8 * 1024, rss_middle * 0.1):
    print(f"FAIL: resident memory grew {growth:.0f} KiB from the middle to the last third"); ok = False
if fd_end > fd_start + 4:
    print(f"FAIL: descriptors grew from {fd_start} to {fd_end}"); ok = False
sys.exit(0 if ok else 1)
PY
