"""How much a burst of sign-ups and logins stalls the other requests of one gevent process.

    python bench/hashing_stall.py --users 80 --concurrency 16 --runs 3

Each run starts a fresh `flask-chat serve` (one gevent process, SQLite in bench/out/,
RATE_LIMITS=off) twice: with argon2 on the gevent hub (PASSWORD_HASH_THREADS=0) and in the
thread pool (PASSWORD_HASH_THREADS=--threads). While `--concurrency` clients sign `--users`
users up and log each in again through the real forms, one more client asks /healthz in a
loop; its latency during the burst (p50/p99/max) is what every socket of that worker would
feel. The sides alternate, run by run. 127.0.0.1 only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "tests"))

from livechat import ChatUser, start_serve  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def probe(base: str, stop: threading.Event, samples: list[float], interval: float) -> None:
    # a new connection each time: on a kept-alive one, delayed ACKs add ~40 ms to every probe
    for _ in range(1_000_000):  # bounded; ends when the burst is over
        if stop.is_set():
            return
        started = time.perf_counter()
        requests.get(base + "/healthz", timeout=10).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(interval)


def one_run(threads: int, users: int, concurrency: int) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="hashing-", dir=OUT))
    server, base = start_serve(workdir, RATE_LIMITS="off", PASSWORD_HASH_THREADS=str(threads))
    try:
        ChatUser(base, f"warm-{uuid.uuid4().hex[:8]}").signup().login()
        idle: list[float] = []
        stop = threading.Event()
        prober = threading.Thread(target=probe, args=(base, stop, idle, 0.01))
        prober.start()
        time.sleep(1)
        stop.set()
        prober.join()

        during: list[float] = []
        stop = threading.Event()
        prober = threading.Thread(target=probe, args=(base, stop, during, 0.01))
        names = [f"u{i}-{uuid.uuid4().hex[:8]}" for i in range(users)]
        prober.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda name: ChatUser(base, name).signup().login(), names))
        burst_s = time.perf_counter() - started
        stop.set()
        prober.join()
    finally:
        server.stop()
    return {
        "threads": threads,
        "burst_s": round(burst_s, 2),
        "idle_p50_ms": round(statistics.median(idle), 1),
        "p50_ms": round(statistics.median(during), 1),
        "p99_ms": round(percentile(during, 0.99), 1),
        "max_ms": round(max(during), 1),
        "probes": len(during),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=80, help="sign-ups, then as many logins")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="pool size on the 'pool' side")
    args = parser.parse_args()
    if not (1 <= args.users <= 500 and 1 <= args.concurrency <= 64 and 1 <= args.runs <= 10):
        parser.error("keep it bounded: users 1-500, concurrency 1-64, runs 1-10")
    results = []
    for run in range(1, args.runs + 1):
        for threads in (0, args.threads):
            result = one_run(threads, args.users, args.concurrency)
            result["run"] = run
            results.append(result)
            side = "hub " if threads == 0 else f"pool({threads})"
            print(
                f"run {run} {side:8} burst {result['burst_s']:6.2f} s  /healthz idle p50 "
                f"{result['idle_p50_ms']:5.1f} ms | during p50 {result['p50_ms']:6.1f} "
                f"p99 {result['p99_ms']:6.1f} max {result['max_ms']:6.1f} ms "
                f"({result['probes']} probes)",
                flush=True,
            )
    path = OUT / f"hashing-stall-{int(time.time())}.json"
    path.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"raw: {path.relative_to(ROOT)}  (machine: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
