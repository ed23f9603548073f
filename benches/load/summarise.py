"""Summarises scripts/loadtest.sh's wrk runs: for each leg, the median over the rounds of its
p50 and p99, its requests per second, what it adds over its direct baseline (per round, the
leg's p50 less the direct run's p50 of the same round; then the median of those), and that
added p50 over the nginx hop's, the anchor. Rounds interleave the legs, so a slow moment of
the machine lands on every leg of a round rather than on one leg.

Usage: python3 summarise.py WORK_DIR ROUNDS CLOCK_TICKS_PER_SECOND
Reads WORK_DIR/<leg>.<round>.txt (wrk --latency output) and <leg>.<round>.cpu (the serving
process's user + system clock ticks over the run).
"""

import re
import statistics
import sys

# leg, its direct baseline, the nginx leg it is compared with
LEGS = [
    ("get_direct", "get_direct", None),
    ("get_nginx", "get_direct", "get_nginx"),
    ("get_memgate", "get_direct", "get_nginx"),
    ("chat_direct", "chat_direct", None),
    ("chat_nginx", "chat_direct", "chat_nginx"),
    ("chat_memgate", "chat_direct", "chat_nginx"),
    ("embed_direct", "embed_direct", None),
    ("memory", "chat_direct", "chat_nginx"),
    ("responses_direct", "responses_direct", None),
    ("responses_memory", "responses_direct", None),
    ("messages_direct", "messages_direct", None),
    ("messages_memory", "messages_direct", None),
    ("memory_store", "chat_direct", "chat_nginx"),
]
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * UNITS[unit]


def read(work: str, leg: str, round_: int, ticks_per_second: int) -> dict:
    text = open(f"{work}/{leg}.{round_}.txt").read()
    found = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    ticks = int(open(f"{work}/{leg}.{round_}.cpu").read())
    found["cpu_us"] = ticks * 1e6 / ticks_per_second / max(requests, 1)
    for pct in ("50", "99"):
        found[pct] = ms(re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M).group(1))
    errors = re.findall(r"(Non-2xx or 3xx responses: \d+|Socket errors: .*)", text)
    found["errors"] = errors
    return found


def main() -> None:
    work, rounds, ticks_per_second = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    runs = {leg: [read(work, leg, r, ticks_per_second) for r in range(rounds)] for leg, _, _ in LEGS}
    med = statistics.median

    def added(leg: str, base: str, pct: str) -> float:
        return med(runs[leg][r][pct] - runs[base][r][pct] for r in range(rounds))

    print(f"{'leg':<17} {'p50_ms':>8} {'p99_ms':>8} {'req_s':>9} {'added_p50':>10} {'added_p99':>10} {'x_nginx':>8} {'cpu_us':>7}")
    for leg, base, nginx in LEGS:
        p50 = med(r["50"] for r in runs[leg])
        p99 = med(r["99"] for r in runs[leg])
        rps = med(r["rps"] for r in runs[leg])
        a50, a99 = added(leg, base, "50"), added(leg, base, "99")
        ratio = "-"
        if nginx:
            anchor = added(nginx, base, "50")
            ratio = f"{a50 / anchor:.2f}" if anchor > 0 else "-"
        cpu = med(r["cpu_us"] for r in runs[leg])
        print(f"{leg:<17} {p50:8.3f} {p99:8.3f} {rps:9.0f} {a50:10.3f} {a99:10.3f} {ratio:>8} {cpu:7.1f}")
    memory_over_chat = med(runs["memory"][r]["50"] - runs["chat_memgate"][r]["50"] for r in range(rounds))
    embed = med(r["50"] for r in runs["embed_direct"])
    print(
        f"memory path over chat_memgate: p50 +{memory_over_chat:.3f} ms; the embedding round trip "
        f"(embed_direct p50) is {embed:.3f} ms, so memgate's own part is {memory_over_chat - embed:.3f} ms"
    )
    cpu = {leg: med(r["cpu_us"] for r in runs[leg]) for leg, _, _ in LEGS}
    shapes = [("chat", "memory", "chat_direct"), ("responses", "responses_memory", "responses_direct"),
              ("messages", "messages_memory", "messages_direct")]
    print(
        "memory path by API shape, added p50 over its direct leg / memgate CPU per request: "
        + ", ".join(f"{name} +{added(leg, base, '50'):.3f} ms / {cpu[leg]:.1f} us" for name, leg, base in shapes)
    )
    print(
        "CPU per request of the proxy (cpu_us, median over rounds): memgate over nginx "
        f"{cpu['get_memgate'] / cpu['get_nginx']:.2f}x on GET, "
        f"{cpu['chat_memgate'] / cpu['chat_nginx']:.2f}x on chat"
    )
    for leg, _, _ in LEGS:
        for r, run in enumerate(runs[leg]):
            for error in run["errors"]:
                print(f"{leg} round {r}: {error}")


if __name__ == "__main__":
    main()
