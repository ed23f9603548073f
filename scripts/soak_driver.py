"""Soak load for scripts/soak.sh: N clients, each in its own memory session, sending streamed
chat completions through memgate for a fixed time, each turn with a sentence that names it, so
that the turns sent can be matched with the facts stored. Standard library only."""

import http.client
import json
import sys
import threading
import time


def client(host, port, key, session, stop_at, pause, results, index):
    conn = http.client.HTTPConnection(host, port, timeout=60)
    sent = completed = errors = 0
    while time.time() < stop_at:
        # Words of its own, so that no two turns' facts look alike to the mock's embeddings.
        sentence = f"Soak marker {session}n{sent} notes k{sent}a and k{sent}b."
        body = json.dumps({
            "model": "mock-model",
            "stream": True,
            "memory_id": session,
            "messages": [{"role": "user", "content": sentence}],
        })
        sent += 1
        try:
            conn.request("POST", "/v1/chat/completions", body,
                         {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            if response.status == 200 and "[DONE]" in text:
                completed += 1
            else:
                errors += 1
        except Exception:  # a broken connection is counted and replaced
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=60)
        time.sleep(pause)
    conn.close()
    results[index] = (session, sent, completed, errors)


def main():
    host, port, key, sessions, seconds, pause = sys.argv[1:7]
    names = sessions.split(",")
    stop_at = time.time() + float(seconds)
    results = [None] * len(names)
    threads = [
        threading.Thread(target=client,
                         args=(host, int(port), key, name, stop_at, float(pause), results, i))
        for i, name in enumerate(names)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps([{"session": s, "sent": a, "completed": c, "errors": e}
                      for (s, a, c, e) in results]))


if __name__ == "__main__":
    main()
