"""Load test: many Socket.IO clients in rooms, through nginx, against a real local cluster.

    python bench/load.py --clients 200 --rooms 10 --rate 1 --duration 30

It starts `flask-chat cluster` (3 workers, nginx, a private Redis, a fresh SQLite database
in bench/out/, every message stored, RATE_LIMITS=off), signs users up through the real
forms, connects the clients (async python-socketio over aiohttp WebSocket, offering
permessage-deflate as browsers do) spread over the rooms, has each send at a fixed rate,
and reports delivered messages per second, end-to-end latency (send to receipt, every
receiver) p50/p95/p99, lost and duplicated deliveries, and the CPU each process used (the
load generator's too).
JSON goes to bench/out/, a table to stdout. 127.0.0.1 only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "tests"))

from livechat import ChatUser, free_port, wait_until  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the cluster under test ----------------------------------------------------------------


class ClusterUnderTest:
    def __init__(self, workers: int, ws_compression: bool, database_url: str):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-", dir=OUT))
        self.state_file = self.dir / "cluster.json"
        args = [sys.executable, "-m", "app.cli", "cluster", "--workers", str(workers)]
        args += ["--port", str(free_port()), "--state-file", str(self.state_file)]
        if ws_compression:
            args.append("--ws-compression")
        env = {
            **os.environ,
            "FLASK_CHAT_INSTANCE": str(self.dir / "instance"),
            "DATABASE_URL": database_url,
            "SECRET_KEY": "",
            "REDIS_URL": "",
            "LOG_FORMAT": "json",
            # hundreds of sign-ups and sockets from 127.0.0.1, each client at its own rate:
            # every abuse limit (nginx's and the app's) would refuse that by design
            "RATE_LIMITS": "off",
        }
        self.log = open(self.dir / "cluster.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"cluster exited; see {self.dir / 'cluster.log'}")
            return self.state_file.exists()

        wait_until(ready, 60, "the cluster", interval=0.1)
        self.state = json.loads(self.state_file.read_text())
        self.url = self.state["url"].rstrip("/")

    def processes(self) -> dict[str, int]:
        """Name -> pid of every serving process: each gunicorn worker (the master's child),
        nginx's worker, redis-server."""
        found = {}
        for w in self.state["workers"]:
            children = _children(w["pid"])
            found[w["name"]] = children[0] if children else w["pid"]
        nginx_children = _children(self.state["nginx"]["pid"])
        found["nginx"] = nginx_children[0] if nginx_children else self.state["nginx"]["pid"]
        found["redis"] = self.state["redis"]["pid"]
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


# -- one load-generating process ---------------------------------------------------------------


async def run_clients(spec: dict, control) -> dict:
    import aiohttp
    import socketio

    latencies: list[float] = []  # ms, for messages sent after the warm-up
    ack_latencies: list[float] = []  # ms from send to the sender's ack
    receipts: Counter = Counter()  # message id -> deliveries seen by this process's clients
    acks: list[tuple[int, int]] = []  # (message id, room) of every acked send
    errors: Counter = Counter()
    clients = []
    measure_from = [float("inf")]

    def on_message_for(client_index: int):
        def on_message(data):
            now = time.time_ns()
            receipts[data["id"]] += 1
            _, sent_ns = data["message"].rsplit("|", 1)
            sent = int(sent_ns)
            if sent >= measure_from[0]:
                latencies.append((now - sent) / 1e6)

        return on_message

    connector_limit = len(spec["clients"]) + 10
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connector_limit))
    try:

        async def connect(index: int, client: dict):
            sio = socketio.AsyncClient(
                reconnection=False,
                http_session=http,
                request_timeout=30,
                websocket_extra_options={
                    "headers": {"Cookie": client["cookie"]},
                    **({"compress": 15} if spec["offer_deflate"] else {}),
                },
            )
            sio.on("message", on_message_for(index))
            await sio.connect(
                f"{spec['url']}/?affinity={uuid.uuid4().hex}",
                transports=["websocket"],
                wait_timeout=30,
            )
            ack = await sio.call("join", {"room": client["room"]}, timeout=30)
            if not ack.get("ok"):
                raise RuntimeError(f"join failed: {ack}")
            clients.append((sio, client["room"], ack["worker"]))

        # connect in small batches: a burst of hundreds of handshakes is not the test
        items = list(enumerate(spec["clients"]))
        for start in range(0, len(items), 20):
            await asyncio.gather(*(connect(i, c) for i, c in items[start : start + 20]))
        workers = Counter(w for _, _, w in clients)
        control.send({"ready": True, "workers": dict(workers)})

        start_at = await asyncio.get_running_loop().run_in_executor(None, control.recv)
        measure_from[0] = int((start_at + spec["warmup"]) * 1e9)
        cpu_start = time.process_time()
        rate, duration = spec["rate"], spec["duration"]
        sends_per_client = int(rate * duration)
        pending: set[asyncio.Task] = set()

        async def send_one(sio, room):
            sent = time.time_ns()
            payload = f"{uuid.uuid4().hex[:8]}|{sent}"
            try:
                ack = await sio.call(
                    "message",
                    {"room": room, "message": payload, "client_id": uuid.uuid4().hex},
                    timeout=15,
                )
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors[type(exc).__name__] += 1
                return
            if ack.get("ok"):
                acks.append((ack["id"], room))
                if sent >= measure_from[0]:
                    ack_latencies.append((time.time_ns() - sent) / 1e6)
            else:
                errors[ack.get("error", "unknown")] += 1

        async def client_loop(sio, room):
            phase = random.random() / rate
            for k in range(sends_per_client):  # bounded
                due = start_at + phase + k / rate
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(send_one(sio, room))
                pending.add(task)
                task.add_done_callback(pending.discard)

        await asyncio.gather(*(client_loop(sio, room) for sio, room, _ in clients))
        if pending:
            await asyncio.wait(pending, timeout=20)
        # let the last broadcasts arrive: bounded drain
        await asyncio.sleep(spec["drain"])
        cpu_used = time.process_time() - cpu_start
        wall = time.time() - start_at
        for sio, _, _ in clients:
            await sio.disconnect()
    finally:
        await http.close()

    rooms = Counter(room for _, room, _ in clients)
    return {
        "latencies": latencies,
        "ack_latencies": ack_latencies,
        "receipts": dict(receipts),
        "acks": acks,
        "errors": dict(errors),
        "room_members": dict(rooms),
        "cpu_seconds": cpu_used,
        "wall_seconds": wall,
    }


def generator_process(spec: dict, control) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        result = asyncio.run(run_clients(spec, control))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        control.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    control.send(result)


# -- the run ---------------------------------------------------------------------------------


def make_users(url: str, count: int) -> list[ChatUser]:
    """Sign users up through the real forms (argon2: a few at a time), each with a session."""
    suffix = uuid.uuid4().hex[:6]
    users = [ChatUser(url, f"bench{i}-{suffix}") for i in range(count)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda u: u.signup(), users))
    return users


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def profile_worker(pid: int, seconds: int, path: Path) -> subprocess.Popen | None:
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("py-spy is not installed (pip install py-spy): no profile", file=sys.stderr)
        return None
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
        + ["--format", "raw", "--output", str(path), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run(args) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    cluster = ClusterUnderTest(args.workers, args.ws_compression, args.database_url)
    procs = []
    try:
        users = make_users(cluster.url, min(args.users, args.clients))
        rooms = [
            users[0].create_room(f"bench-{i}-{uuid.uuid4().hex[:6]}") for i in range(args.rooms)
        ]
        clients = [
            {"cookie": users[i % len(users)].cookie_header(), "room": rooms[i % len(rooms)]}
            for i in range(args.clients)
        ]
        controls = []
        for p in range(args.procs):
            parent_end, child_end = mp.Pipe()
            spec = {
                "url": cluster.url,
                "clients": clients[p :: args.procs],
                "rate": args.rate,
                "duration": args.duration,
                "warmup": args.warmup,
                "drain": args.drain,
                "offer_deflate": not args.no_deflate_offer,
            }
            proc = mp.Process(target=generator_process, args=(spec, child_end), daemon=True)
            proc.start()
            procs.append(proc)
            controls.append(parent_end)
        placement: Counter = Counter()
        for control in controls:
            if not control.poll(120):
                raise RuntimeError("a load generator did not get its clients connected")
            ready = control.recv()
            if "error" in ready:
                raise RuntimeError(ready["error"])
            placement.update(ready["workers"])

        serving = cluster.processes()
        start_at = time.time() + 1.0
        for control in controls:
            control.send(start_at)
        profiler = None
        if args.profile:
            target = serving[args.profile]
            wait_until(lambda: time.time() >= start_at + args.warmup, 30, "the warm-up")
            profiler = profile_worker(
                target, max(1, int(args.duration - args.warmup)), cluster.dir / "profile.txt"
            )
        wait_until(lambda: time.time() >= start_at, 10, "the start")
        cpu_before = {name: cpu_seconds(pid) for name, pid in serving.items()}
        gen_cpu_before = {p.pid: cpu_seconds(p.pid) for p in procs}
        machine_before = machine_cpu()
        wait_until(lambda: time.time() >= start_at + args.duration, args.duration + 10, "the end")
        cpu_after = {name: cpu_seconds(pid) for name, pid in serving.items()}
        gen_cpu_after = {p.pid: cpu_seconds(p.pid) for p in procs}
        machine_after = machine_cpu()

        results = []
        for control in controls:
            if not control.poll(args.duration + 120):
                raise RuntimeError("a load generator did not report")
            result = control.recv()
            if "error" in result:
                raise RuntimeError(result["error"])
            results.append(result)
        if profiler is not None:
            profiler.wait(timeout=60)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        cluster.stop()

    members: Counter = Counter()
    receipts: Counter = Counter()
    acks: list = []
    errors: Counter = Counter()
    latencies: list[float] = []
    ack_latencies: list[float] = []
    for r in results:
        members.update({int(k): v for k, v in r["room_members"].items()})
        receipts.update({int(k): v for k, v in r["receipts"].items()})
        acks += r["acks"]
        errors.update(r["errors"])
        latencies += r["latencies"]
        ack_latencies += r["ack_latencies"]
    expected = sum(members[room] for _, room in acks)
    lost = sum(max(0, members[room] - receipts.get(mid, 0)) for mid, room in acks)
    duplicated = sum(max(0, receipts.get(mid, 0) - members[room]) for mid, room in acks)
    latencies.sort()
    ack_latencies.sort()
    span = args.duration
    busy = machine_after[0] - machine_before[0]
    total = max(1, machine_after[1] - machine_before[1])
    summary = {
        "command": " ".join(sys.argv),
        "clients": args.clients,
        "rooms": args.rooms,
        "rate_per_client": args.rate,
        "duration_s": args.duration,
        "workers": args.workers,
        "ws_compression": args.ws_compression,
        "placement": dict(placement),
        "sent_acked": len(acks),
        "send_errors": dict(errors),
        "offered_deliveries_per_s": round(args.clients * args.rate * args.clients / args.rooms),
        "expected_deliveries": expected,
        "delivered": sum(receipts.values()),
        "delivered_per_s": round(sum(receipts.values()) / span),
        "lost": lost,
        "duplicated": duplicated,
        "latency_ms": {
            "samples": len(latencies),
            "p50": round(percentile(latencies, 50), 2),
            "p95": round(percentile(latencies, 95), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(latencies[-1], 2) if latencies else None,
        },
        "ack_latency_ms": {
            "p50": round(percentile(ack_latencies, 50), 2),
            "p99": round(percentile(ack_latencies, 99), 2),
        },
        # of all cores together (2 cores = 100 %): other load on the box shows here
        "machine_busy_percent": round(100 * busy / total, 1),
        "cpu_percent": {
            name: round(100 * (cpu_after[name] - cpu_before[name]) / span, 1) for name in serving
        },
        "generator_cpu_percent": [
            round(100 * (gen_cpu_after[pid] - gen_cpu_before[pid]) / span, 1)
            for pid in gen_cpu_before
        ],
        "run_dir": str(cluster.dir),
    }
    return summary


def table(s: dict) -> str:
    lat = s["latency_ms"]
    rows = [
        ("clients / rooms / rate", f"{s['clients']} / {s['rooms']} / {s['rate_per_client']} msg/s"),
        ("workers, ws compression", f"{s['workers']}, {'on' if s['ws_compression'] else 'off'}"),
        ("clients per worker", ", ".join(f"{k}={v}" for k, v in sorted(s["placement"].items()))),
        ("messages sent (acked)", f"{s['sent_acked']}  errors: {s['send_errors'] or 0}"),
        ("deliveries expected", s["expected_deliveries"]),
        ("delivered / s", f"{s['delivered_per_s']} (offered {s['offered_deliveries_per_s']})"),
        ("lost / duplicated", f"{s['lost']} / {s['duplicated']}"),
        ("latency p50 / p95 / p99", f"{lat['p50']} / {lat['p95']} / {lat['p99']} ms"),
        ("latency max", f"{lat['max']} ms ({lat['samples']} samples)"),
        (
            "ack latency p50 / p99",
            f"{s['ack_latency_ms']['p50']} / {s['ack_latency_ms']['p99']} ms",
        ),
        ("machine busy % (all cores)", s["machine_busy_percent"]),
        ("server CPU % (of one core)", ", ".join(f"{k}={v}" for k, v in s["cpu_percent"].items())),
        ("load generator CPU % (each)", ", ".join(str(v) for v in s["generator_cpu_percent"])),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1.0, help="messages per second per client")
    parser.add_argument("--duration", type=int, default=30, help="seconds of sending")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds left out of latency")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait for the last")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--users", type=int, default=50, help="accounts shared by the clients")
    parser.add_argument("--procs", type=int, default=2, help="load-generating processes")
    parser.add_argument(
        "--ws-compression", action="store_true", help="let the server negotiate permessage-deflate"
    )
    parser.add_argument(
        "--no-deflate-offer", action="store_true", help="clients do not offer permessage-deflate"
    )
    parser.add_argument("--database-url", default="", help="default: SQLite in bench/out/")
    parser.add_argument("--profile", help="py-spy a serving process during the run, e.g. w1")
    args = parser.parse_args()
    if not (1 <= args.clients <= 5000 and 1 <= args.rooms <= args.clients):
        parser.error("need 1 <= rooms <= clients <= 5000")
    if not (0 < args.rate <= 50 and 1 <= args.duration <= 600):
        parser.error("need 0 < rate <= 50 and 1 <= duration <= 600")

    summary = run(args)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = OUT / f"load-{stamp}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(table(summary))
    print(json.dumps(summary))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
