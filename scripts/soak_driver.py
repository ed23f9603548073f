"""Soak load for scripts/soak.sh: one thread per client, each in its own memory session,
sending streamed chat completions through memgate until the run's request count is spent (or
its time is up), each turn with a sentence that names it, so that the turns sent can be matched
with the facts stored. Every `--every` finished requests, and at the end, the thread that
finished that request reads memgate's resident memory and open descriptors from /proc, so that
the samples are taken at request counts, not at times. Standard library only.

Prints JSON: {"clients": [{session, sent, completed, errors}], "samples": [{requests, seconds,
rss_kib, fds}]}."""

import argparse
import http.client
import json
import os
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Run:
    """What the clients share: the request budget, the finished count and the samples."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.taken = 0
        self.finished = 0
        self.started = time.time()
        self.stop_at = self.started + args.seconds if args.seconds else None
        self.samples = []

    def take(self):
        """A ticket for one more request, or False when the budget or the time is spent."""
        with self.lock:
            if self.args.requests and self.taken >= self.args.requests:
                return False
            if self.stop_at and time.time() >= self.stop_at:
                return False
            self.taken += 1
            return True

    def sample(self):
        self.samples.append({
            "requests": self.finished,
            "seconds": round(time.time() - self.started, 1),
            "rss_kib": rss_kib(self.args.pid),
            "fds": open_fds(self.args.pid),
        })

    def done_one(self):
        with self.lock:
            self.finished += 1
            if self.finished % self.args.every == 0:
                self.sample()


def client(run, session, results, index):
    a = run.args
    conn = http.client.HTTPConnection(a.host, a.port, timeout=60)
    sent = completed = errors = 0
    while run.take():
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
                         {"Authorization": f"Bearer {a.key}", "Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            if response.status == 200 and "[DONE]" in text:
                completed += 1
            else:
                errors += 1
        except Exception:  # a broken connection is counted and replaced
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(a.host, a.port, timeout=60)
        run.done_one()
        if a.pause:
            time.sleep(a.pause)
    conn.close()
    results[index] = {"session": session, "sent": sent, "completed": completed, "errors": errors}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--sessions", required=True, help="comma-separated memory ids, one client each")
    p.add_argument("--requests", type=int, default=0, help="requests in all (0: no bound)")
    p.add_argument("--seconds", type=float, default=0, help="time bound (0: none)")
    p.add_argument("--pause", type=float, default=0, help="pause between a client's requests")
    p.add_argument("--pid", type=int, required=True, help="memgate's process id")
    p.add_argument("--every", type=int, default=1000, help="sample every N finished requests")
    args = p.parse_args()
    if not args.requests and not args.seconds:
        p.error("give --requests or --seconds")
    names = args.sessions.split(",")
    run = Run(args)
    results = [None] * len(names)
    threads = [threading.Thread(target=client, args=(run, name, results, i))
               for i, name in enumerate(names)]
    with run.lock:
        run.sample()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with run.lock:
        if run.samples[-1]["requests"] != run.finished:
            run.sample()
    print(json.dumps({"clients": results, "samples": run.samples}))


if __name__ == "__main__":
    main()
