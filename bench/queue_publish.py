"""What a room broadcast costs the worker that publishes it: python-socketio's stock Redis
manager against app/realtime/queue.py's pipelined publisher.

    python bench/queue_publish.py --messages 20000 --concurrency 50 --runs 3

One gevent process, a private redis-server on 127.0.0.1 and a subscriber process that counts
what arrives. `--concurrency` greenlets (handlers, as in a worker) emit `--messages` room
broadcasts of a 64-character chat message between them, through one manager; the run ends
when the subscriber has received every one. Reported per broadcast: CPU of the publishing
process, CPU of redis-server, and the wall time. The two managers alternate, run by run.
`--concurrency` stays below redis-py's pool size (100) so that the stock manager does not
fail (tests/cluster/test_queue_burst.py shows what it does above that).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import socketio  # noqa: E402

from app import codec  # noqa: E402
from app.realtime.queue import CHANNEL, RedisQueue  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cluster_helpers import RedisServer  # noqa: E402

SUBSCRIBER = """
import sys, redis
port, expected = int(sys.argv[1]), int(sys.argv[2])
pubsub = redis.Redis(port=port).pubsub(ignore_subscribe_messages=True)
pubsub.subscribe(sys.argv[3])
print("ready", flush=True)
count = 0
for message in pubsub.listen():
    count += 1
    if count >= expected:
        print("done", flush=True)
        break
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(kind: str, url: str, port: int, redis_pid: int, messages: int, concurrency: int):
    manager = RedisQueue(url) if kind == "queue" else socketio.RedisManager(url, channel=CHANNEL)
    socketio.Server(async_mode="gevent", client_manager=manager, json=codec)
    subscriber = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, str(port), str(messages), CHANNEL],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert subscriber.stdout.readline().strip() == "ready"
    wire = {
        "id": 1,
        "seq": 1,
        "room": 1,
        "username": "someone",
        "message": "x" * 64,
        "created_at": "2026-01-01T00:00:00Z",
        "client_id": "c" * 32,
    }

    def handler(count: int) -> None:
        for _ in range(count):
            manager.emit("message", wire, room="chat:1")
            gevent.sleep(0)  # a handler ends here: the hub runs the others (and the publisher)

    share = messages // concurrency
    counts = [share + (1 if i < messages % concurrency else 0) for i in range(concurrency)]
    cpu0, redis0, wall0 = time.process_time(), cpu_seconds(redis_pid), time.monotonic()
    gevent.joinall([gevent.spawn(handler, n) for n in counts])
    # the subscriber has everything: the publishes are done (the queue's are asynchronous)
    with gevent.Timeout(120):
        done = subscriber.stdout.readline()
    assert done.strip() == "done", done
    wall = time.monotonic() - wall0
    cpu, redis_cpu = time.process_time() - cpu0, cpu_seconds(redis_pid) - redis0
    subscriber.wait(timeout=10)
    return {
        "kind": kind,
        "worker_us": cpu / messages * 1e6,
        "redis_us": redis_cpu / messages * 1e6,
        "wall_us": wall / messages * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            port, url = server.port, server.url
            results = []
            for _ in range(args.runs):
                for kind in ("stock", "queue"):
                    result = one_run(
                        kind, url, port, server.proc.pid, args.messages, args.concurrency
                    )
                    print(json.dumps(result), flush=True)
                    results.append(result)
        finally:
            server.kill()
    print(f"\nmedians of {args.runs} runs, {args.messages} broadcasts, {args.concurrency} at once")
    print("| manager | worker CPU µs / broadcast | redis-server CPU µs | wall µs |")
    print("| --- | --- | --- | --- |")
    for kind in ("stock", "queue"):
        mine = [r for r in results if r["kind"] == kind]
        row = [statistics.median(r[k] for r in mine) for k in ("worker_us", "redis_us", "wall_us")]
        print(f"| {kind} | {row[0]:.1f} | {row[1]:.1f} | {row[2]:.1f} |")


if __name__ == "__main__":
    main()
