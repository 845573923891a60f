"""Load test: many Socket.IO clients in rooms, through nginx, against a real local cluster.

    python bench/load.py --clients 200 --rooms 10 --rate 1 --duration 30
    python bench/load.py --clients 200 --rooms 10 --rate 1 --duration 23 --compare bare --runs 3
    python bench/load.py --duration 23 --runs 3 --baseline main   # an A/B of a change

It starts `flask-chat cluster` (3 workers, nginx, a private Redis, a fresh SQLite database
in bench/out/, every message stored, RATE_LIMITS=off unless `--limits on`), signs users up
through the real forms, connects the clients (bench/leanio.py: a hand-written Socket.IO
client over raw WebSocket frames, with the session cookie and the site's Origin on the
handshake) spread over the rooms, has each send at a fixed rate, and reports delivered
messages per second, end-to-end latency (send to receipt, every receiver) p50/p95/p99/max,
lost and duplicated deliveries, the CPU of every serving process as **server µs per
delivery**, and the load generator's own CPU per delivery.

`--compare bare` also starts bench/bare_server.py (a bare Flask-SocketIO broadcast server,
2 processes + its own Redis) after each cluster run and drives it with the same generator,
so every figure comes with its ratio to the bare reference, taken side by side.

The measured window is from the end of the warm-up to the end of sending: server and
generator CPU are read at its two ends, and divided by the deliveries received inside it.
`--baseline REV` also runs flask-chat as it is at git revision REV (a worktree made under
bench/out/, run with this virtualenv), alternating with this checkout: the A/B of a change,
side by side in one invocation. `--limits on` keeps the abuse limits (quotas widened to
fit). JSON goes to bench/out/, a table to stdout. 127.0.0.1 only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import multiprocessing as mp
import os
import random
import signal
import statistics
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

sys.path.insert(0, str(ROOT / "bench"))
from bare_server import BareServer  # noqa: E402
from leanio import LeanSocket, Loop  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the cluster under test ----------------------------------------------------------------


def limits_env(args) -> dict[str, str]:
    """The environment for the app's abuse limits during a run.

    Off by default: hundreds of sign-ups and sockets from 127.0.0.1, each client at its own
    rate, are what every limit (nginx's and the app's) refuses by design. `--limits on`
    keeps every limit and its per-event cost (the Redis check of `message.user`), with
    quotas just wide enough for the scenario (twice what it sends).
    """
    if args.limits == "off":
        return {"RATE_LIMITS": "off"}
    per_user = args.rate * args.clients / min(args.users, args.clients)
    return {
        "RATE_LIMITS": "on",
        "SOCKETS_PER_ADDRESS": str(2 * args.clients),
        "SOCKETS_PER_USER": str(2 * args.clients),
        "RATE_LIMIT_SIGNUP_ADDRESS": "10000/hour",
        "RATE_LIMIT_LOGIN_ADDRESS": "10000/hour",
        "RATE_LIMIT_CREATE_ROOM_USER": "10000/hour",
        "RATE_LIMIT_MESSAGE_USER": f"{math.ceil(2 * 30 * per_user)}/30s",
        "RATE_LIMIT_MESSAGE_CONNECTION": f"{math.ceil(2 * 20 * args.rate)}/20s",
    }


class ClusterUnderTest:
    def __init__(
        self,
        workers: int,
        ws_compression: bool,
        database_url: str,
        source: Path = ROOT,
        limits: dict[str, str] | None = None,
    ):
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
            **(limits or {"RATE_LIMITS": "off"}),
            # the app of this source tree (a --baseline revision's checkout, or this one)
            "PYTHONPATH": str(source),
        }
        self.log = open(self.dir / "cluster.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=source,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
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


def database_processes(database_url: str) -> dict[str, int]:
    """PostgreSQL's processes serving this database (its backends and background processes),
    when it runs on this machine; SQLite runs inside the workers: nothing to add."""
    if not database_url.startswith("postgresql"):
        return {}
    import psycopg

    dsn = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE (datname = current_database() OR datname IS NULL)"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return {f"pg{pid}": pid for (pid,) in rows if Path(f"/proc/{pid}").exists()}


# -- one load-generating process ---------------------------------------------------------------

# latency histogram: buckets of < 1 % width (HDR-style: 8 significant bits of the µs value)


def latency_bucket(us: int) -> int:
    shift = us.bit_length() - 8
    if shift <= 0:
        return us
    return (shift << 8) | (us >> shift)


def bucket_value(bucket: int) -> float:
    """The middle of a bucket, in µs."""
    shift, top = bucket >> 8, bucket & 0xFF
    if shift == 0:
        return float(top)
    return (top << shift) + (1 << shift) / 2


def _cpu() -> tuple[float, float, float]:
    """This process's CPU seconds: the exact total, and the user/system split (in ticks)."""
    times = os.times()
    return time.process_time(), times.user, times.system


def generate(spec: dict, control) -> dict:
    """Connect this process's clients, send on schedule, count what arrives; one epoll loop."""
    histogram: dict[int, int] = {}
    ack_histogram: dict[int, int] = {}
    seen: list[set[int]] = []  # per client: message ids received
    duplicates = [0]
    max_latency_us = [0]
    received = [0]  # deliveries so far; read at the ends of the measured window
    measure_from = [1 << 62]  # ns: only messages sent after the warm-up count for latency
    prefix = b'["message",'

    def receiver(lean: LeanSocket):
        mine: set[int] = set()
        seen.append(mine)
        add = mine.add

        def on_event(payload: bytes) -> None:
            now = lean.received_ns  # the kernel's receipt time, not when the loop got to it
            if not payload.startswith(prefix):
                return  # notices
            # {"id": 12, "seq": 3, "room": 7, "username": "...", "message": "<ns>|...", ...}
            i = payload.find(b'"id":', 11) + 5
            j = payload.find(b",", i)
            message_id = int(payload[i:j])
            k = payload.find(b'"', payload.find(b'"message":', j) + 10) + 1
            sent = int(payload[k : payload.find(b"|", k)])
            received[0] += 1
            if message_id in mine:
                duplicates[0] += 1
            else:
                add(message_id)
            if sent >= measure_from[0]:
                us = (now - sent) // 1000
                b = latency_bucket(us)
                histogram[b] = histogram.get(b, 0) + 1
                if us > max_latency_us[0]:
                    max_latency_us[0] = us

        return on_event

    clients: list[tuple[LeanSocket, int]] = []
    placement: Counter = Counter()
    try:
        for client in spec["clients"]:
            lean = LeanSocket()
            lean.on_event = receiver(lean)
            lean.connect(
                client["url"],
                cookie=client["cookie"],
                query=f"affinity={uuid.uuid4().hex}",
                offer_deflate=spec["offer_deflate"],
                timeout=30,
            )
            clients.append((lean, client["room"]))
            ack = lean.call("join", {"room": client["room"]}, timeout=30)
            if not ack.get("ok"):
                raise RuntimeError(f"join failed: {ack}")
            placement[ack["worker"]] += 1
        loop = Loop()
        for lean, _ in clients:
            loop.add(lean)
        control.send({"ready": True, "workers": dict(placement)})

        start_at = control.recv()  # wall-clock seconds
        to_mono = time.monotonic() - time.time()
        rate, duration = spec["rate"], spec["duration"]
        measure_from[0] = int((start_at + spec["warmup"]) * 1e9)
        window = {}
        acks: list[tuple[int, int]] = []
        errors: Counter = Counter()
        outstanding = [0]

        def send(lean: LeanSocket, room: int) -> None:
            sent = time.time_ns()
            text = f"{sent}|{uuid.uuid4().hex[:8]}|".ljust(spec["message_bytes"], "x")

            def on_ack(ack) -> None:
                outstanding[0] -= 1
                if isinstance(ack, dict) and ack.get("ok"):
                    acks.append((ack["id"], room))
                    if sent >= measure_from[0]:
                        b = latency_bucket((time.time_ns() - sent) // 1000)
                        ack_histogram[b] = ack_histogram.get(b, 0) + 1
                else:
                    errors[ack.get("error", "unknown") if isinstance(ack, dict) else "bad"] += 1

            outstanding[0] += 1
            lean.emit(
                "message",
                {"room": room, "message": text, "client_id": uuid.uuid4().hex},
                on_ack,
            )

        # the schedule: every client at `rate`, each with its own phase; the window's ends
        timers: list[tuple[float, int, int]] = []
        sends = int(rate * duration)
        for index in range(len(clients)):
            phase = random.random() / rate
            for k in range(sends):
                timers.append((start_at + to_mono + phase + k / rate, 0, index))
        timers.append((start_at + to_mono + spec["warmup"], 1, 0))
        timers.append((start_at + to_mono + duration, 2, 0))
        heapq.heapify(timers)

        def next_timer() -> float | None:
            while timers:
                due, kind, index = timers[0]
                if due > time.monotonic():
                    return due
                heapq.heappop(timers)
                if kind == 0:
                    lean, room = clients[index]
                    if not lean.closed:
                        send(lean, room)
                elif kind == 1:
                    window["cpu0"], window["n0"] = _cpu(), received[0]
                else:
                    window["cpu1"], window["n1"] = _cpu(), received[0]
            return None

        end = start_at + to_mono + duration
        loop.run(end + spec["drain"], next_timer, batch=spec["batch_ms"] / 1000)
        # late acks (a saturated server): wait for them, bounded
        for _ in range(40):
            if outstanding[0] <= 0:
                break
            loop.run(time.monotonic() + 0.5)
        closed = sum(1 for lean, _ in clients if lean.closed)
        polls, reads = loop.polls, loop.reads
    finally:
        for lean, _ in clients:
            lean.close()

    receipts: Counter = Counter()
    for mine in seen:
        receipts.update(mine)
    if outstanding[0] > 0:
        errors["no_ack"] += outstanding[0]
    return {
        "histogram": histogram,
        "ack_histogram": ack_histogram,
        "max_latency_us": max_latency_us[0],
        "receipts": dict(receipts),
        "duplicates": duplicates[0],
        "acks": acks,
        "errors": dict(errors),
        "closed_early": closed,
        "polls": polls,
        "reads": reads,
        "room_members": dict(Counter(room for _, room in clients)),
        "window_deliveries": window.get("n1", 0) - window.get("n0", 0),
        # (total, user, system) seconds of CPU inside the window
        "window_cpu_s": [
            window["cpu1"][i] - window["cpu0"][i] if "cpu1" in window else 0.0 for i in (0, 1, 2)
        ],
        "deliveries": received[0],
    }


def generator_process(spec: dict, control) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        result = generate(spec, control)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        control.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    control.send(result)


# -- one run -----------------------------------------------------------------------------------


def make_users(url: str, count: int) -> list[ChatUser]:
    """Sign users up through the real forms (argon2: a few at a time), each with a session."""
    suffix = uuid.uuid4().hex[:6]
    users = [ChatUser(url, f"bench{i}-{suffix}") for i in range(count)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(signup_politely, users))
    return users


def signup_politely(user: ChatUser, attempts: int = 60) -> ChatUser:
    """Sign up; with `--limits on`, nginx's per-address limit on sign-ups (429) is waited out."""
    for _ in range(attempts):
        try:
            return user.signup()
        except AssertionError as exc:
            if "429" not in str(exc) and "Too Many" not in str(exc):
                raise
            time.sleep(0.5)
    raise RuntimeError(f"could not sign {user.username} up: still refused (429)")


def percentile(histogram: dict[int, int], p: float) -> float:
    """The p-th percentile of a latency histogram, in ms."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank = max(1, round(p / 100 * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_value(bucket) / 1000
    return float("nan")


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


def group_of(name: str) -> str:
    """Which part of the server a process is: workers, nginx, redis or database."""
    if name in ("nginx", "redis"):
        return name
    return "database" if name.startswith("pg") else "workers"


def drive(args, side: str, clients: list[dict], serving_fn, run_dir: Path) -> dict:
    """Start the generator processes on `clients`, run the schedule, gather the figures."""
    procs, controls = [], []
    try:
        for p in range(args.procs):
            parent_end, child_end = mp.Pipe()
            spec = {
                "clients": clients[p :: args.procs],
                "rate": args.rate,
                "duration": args.duration,
                "warmup": args.warmup,
                "drain": args.drain,
                "message_bytes": args.message_bytes,
                "batch_ms": args.batch_ms,
                "offer_deflate": side.startswith("flask-chat") and not args.no_deflate_offer,
            }
            proc = mp.Process(target=generator_process, args=(spec, child_end), daemon=True)
            proc.start()
            procs.append(proc)
            controls.append(parent_end)
        placement: Counter = Counter()
        for control in controls:
            if not control.poll(180):
                raise RuntimeError("a load generator did not get its clients connected")
            ready = control.recv()
            if "error" in ready:
                raise RuntimeError(ready["error"])
            placement.update(ready["workers"])

        serving = serving_fn()
        start_at = time.time() + 1.0
        for control in controls:
            control.send(start_at)
        window_start, window_end = start_at + args.warmup, start_at + args.duration
        profiler = None
        if args.profile and side == "flask-chat":
            wait_until(lambda: time.time() >= window_start, 30, "the warm-up")
            seconds = max(1, int(window_end - window_start))
            profiler = profile_worker(serving[args.profile], seconds, run_dir / "profile.txt")
        wait_until(lambda: time.time() >= window_start, 30, "the warm-up", interval=0.005)
        cpu_before = {name: cpu_seconds(pid) for name, pid in serving.items()}
        gen_before = [cpu_seconds(p.pid) for p in procs]
        machine_before = machine_cpu()
        load_before = os.getloadavg()[0]
        wait_until(lambda: time.time() >= window_end, args.duration + 10, "the end", interval=0.005)
        cpu_after = {name: cpu_seconds(pid) for name, pid in serving.items()}
        gen_after = [cpu_seconds(p.pid) for p in procs]
        machine_after = machine_cpu()
        load_after = os.getloadavg()[0]

        results = []
        for control in controls:
            if not control.poll(args.duration + args.drain + 60):
                raise RuntimeError("a load generator did not report")
            result = control.recv()
            if "error" in result:
                raise RuntimeError(result["error"])
            results.append(result)
        if profiler is not None:
            profiler.wait(timeout=60)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()

    members: Counter = Counter()
    receipts: Counter = Counter()
    histogram: Counter = Counter()
    ack_histogram: Counter = Counter()
    acks: list = []
    errors: Counter = Counter()
    for r in results:
        members.update(r["room_members"])
        receipts.update(r["receipts"])
        histogram.update(r["histogram"])
        ack_histogram.update(r["ack_histogram"])
        acks += r["acks"]
        errors.update(r["errors"])
    # per message: every member of its room should have it once (per-client repeats are
    # counted where they arrive, so a repeat and a loss never cancel out)
    lost = sum(max(0, members[room] - receipts.get(mid, 0)) for mid, room in acks)
    duplicated = sum(r["duplicates"] for r in results)
    window = window_end - window_start
    in_window = sum(r["window_deliveries"] for r in results)
    server_cpu = {name: cpu_after[name] - cpu_before[name] for name in serving}
    groups: Counter = Counter()
    for name, seconds in server_cpu.items():
        groups[group_of(name)] += seconds
    per_delivery = 1e6 / max(1, in_window)
    gen_window_cpu = sum(r["window_cpu_s"][0] for r in results)
    gen_user = sum(r["window_cpu_s"][1] for r in results)
    gen_system = sum(r["window_cpu_s"][2] for r in results)
    busy = machine_after[0] - machine_before[0]
    total = max(1, machine_after[1] - machine_before[1])
    return {
        "side": side,
        "placement": dict(placement),
        "sent_acked": len(acks),
        "send_errors": dict(errors),
        "closed_early": sum(r["closed_early"] for r in results),
        # epoll waits of the generators and the socket reads they led to (whole run)
        "generator_polls_reads": [
            sum(r["polls"] for r in results),
            sum(r["reads"] for r in results),
        ],
        "expected_deliveries": sum(members[room] for _, room in acks),
        "delivered": sum(r["deliveries"] for r in results),
        "window_s": round(window, 2),
        "window_deliveries": in_window,
        "delivered_per_s": round(in_window / window),
        "lost": lost,
        "duplicated": duplicated,
        "latency_ms": {
            "samples": sum(histogram.values()),
            "p50": round(percentile(histogram, 50), 2),
            "p95": round(percentile(histogram, 95), 2),
            "p99": round(percentile(histogram, 99), 2),
            "max": round(max(r["max_latency_us"] for r in results) / 1000, 2),
        },
        "ack_latency_ms": {
            "p50": round(percentile(ack_histogram, 50), 2),
            "p99": round(percentile(ack_histogram, 99), 2),
        },
        "server_us_per_delivery": round(sum(server_cpu.values()) * per_delivery, 1),
        "server_us_per_delivery_by_part": {
            g: round(s * per_delivery, 1) for g, s in sorted(groups.items())
        },
        "cpu_percent": {name: round(100 * s / window, 1) for name, s in server_cpu.items()},
        # the generator's own reading of its CPU, over the same window
        "generator_us_per_delivery": round(gen_window_cpu * per_delivery, 2),
        "generator_us_per_delivery_user_system": [
            round(gen_user * per_delivery, 2),
            round(gen_system * per_delivery, 2),
        ],
        "generator_cpu_percent": [
            round(100 * (after - before) / window, 1)
            for before, after in zip(gen_before, gen_after, strict=True)
        ],
        # of all cores together (2 cores = 100 %): other load on the box shows here
        "machine_busy_percent": round(100 * busy / total, 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "run_dir": str(run_dir),
    }


def checkout(revision: str) -> Path:
    """A checkout of `revision` under bench/out/ (a git worktree, made once), to run the
    same load against it in the same invocation (`--baseline`)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = OUT / f"rev-{sha[:12]}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), sha],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return path


def run_flask_chat(args, side: str = "flask-chat", source: Path = ROOT) -> dict:
    with fresh_database(args.database_url) as database_url:
        cluster = ClusterUnderTest(
            args.workers, args.ws_compression, database_url, source, limits_env(args)
        )
        try:
            users = make_users(cluster.url, min(args.users, args.clients))
            rooms = [
                users[0].create_room(f"bench-{i}-{uuid.uuid4().hex[:6]}") for i in range(args.rooms)
            ]
            clients = [
                {
                    "url": cluster.url,
                    "cookie": users[i % len(users)].cookie_header(),
                    "room": rooms[i % len(rooms)],
                }
                for i in range(args.clients)
            ]

            def serving() -> dict[str, int]:
                return {**cluster.processes(), **database_processes(database_url)}

            return drive(args, side, clients, serving, cluster.dir)
        finally:
            cluster.stop()


@contextlib.contextmanager
def fresh_database(database_url: str):
    """Every run on an empty database: SQLite makes a new file in the run's directory (an
    empty URL); a PostgreSQL URL gets a new database on that server, dropped afterwards."""
    if not database_url.startswith("postgresql"):
        yield database_url
        return
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = url._replace(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_bare(args) -> dict:
    bare = BareServer(workers=2, run_dir=Path(tempfile.mkdtemp(prefix="bare-", dir=OUT)))
    try:
        urls = bare.urls
        # no nginx: the clients are spread over the processes directly
        clients = [
            {"url": urls[i % len(urls)], "cookie": "", "room": 1 + i % args.rooms}
            for i in range(args.clients)
        ]
        return drive(args, "bare", clients, bare.processes, bare.dir)
    finally:
        bare.stop()


def row(s: dict) -> list[str]:
    lat = s["latency_ms"]
    parts = s["server_us_per_delivery_by_part"]
    return [
        s["side"],
        str(s["delivered_per_s"]),
        f"{s['lost']} / {s['duplicated']}"
        + (f" ({sum(s['send_errors'].values())} send errors)" if s["send_errors"] else "")
        + (f" ({s['closed_early']} closed)" if s["closed_early"] else ""),
        f"{lat['p50']}",
        f"{lat['p95']}",
        f"{lat['p99']}",
        f"{lat['max']}",
        f"{s['ack_latency_ms']['p99']}",
        f"{s['server_us_per_delivery']}",
        " ".join(f"{k}={v}" for k, v in parts.items()),
        f"{s['generator_us_per_delivery']}",
        f"{s['machine_busy_percent']}",
        "/".join(str(x) for x in s["load_average"]),
    ]


HEADER = [
    "side",
    "deliv/s",
    "lost/dup",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "ack p99",
    "server µs/deliv",
    "by part (µs/deliv)",
    "gen µs/deliv",
    "busy %",
    "load",
]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [HEADER, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratios(runs: list[dict]) -> dict:
    """Medians of each side, and flask-chat's over the bare reference's."""
    medians = {}
    for side in dict.fromkeys(r["side"] for r in runs):
        mine = [r for r in runs if r["side"] == side]
        if mine:
            medians[side] = {
                "server_us_per_delivery": statistics.median(
                    r["server_us_per_delivery"] for r in mine
                ),
                "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in mine),
                "generator_us_per_delivery": statistics.median(
                    r["generator_us_per_delivery"] for r in mine
                ),
            }
    out = {"medians": medians}
    if "flask-chat" in medians and "bare" in medians:
        fc, bare = medians["flask-chat"], medians["bare"]
        out["server_us_ratio"] = round(
            fc["server_us_per_delivery"] / max(bare["server_us_per_delivery"], 1e-9), 2
        )
        out["p99_ratio"] = round(fc["p99_ms"] / max(bare["p99_ms"], 1e-9), 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1.0, help="messages per second per client")
    parser.add_argument("--duration", type=int, default=30, help="seconds of sending")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds left out of figures")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait for the last")
    parser.add_argument("--message-bytes", type=int, default=64, help="length of each message")
    parser.add_argument(
        "--batch-ms",
        type=float,
        default=5.0,
        help="generator naps this long between reads (latency uses kernel receive times)",
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--users", type=int, default=50, help="accounts shared by the clients")
    parser.add_argument("--procs", type=int, default=2, help="load-generating processes")
    parser.add_argument(
        "--compare",
        choices=["bare"],
        help="also drive bench/bare_server.py after each run, and print the ratios",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        action="append",
        default=[],
        help="also run flask-chat at this git revision (an A/B of a change, side by side); "
        "repeat it for a ladder of changes",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs of each side, alternating")
    parser.add_argument("--bare-only", action="store_true", help="only the bare reference")
    parser.add_argument(
        "--ws-compression", action="store_true", help="let the server negotiate permessage-deflate"
    )
    parser.add_argument(
        "--no-deflate-offer",
        action="store_true",
        help="clients do not offer permessage-deflate (they never offer it to the bare server)",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="default: SQLite in bench/out/; PostgreSQL: a new database per run on that server",
    )
    parser.add_argument(
        "--limits",
        choices=["off", "on"],
        default="off",
        help="on: the app's and nginx's abuse limits stay on (quotas widened to fit the run)",
    )
    parser.add_argument("--profile", help="py-spy a serving process during the run, e.g. w1")
    args = parser.parse_args()
    if not (1 <= args.clients <= 5000 and 1 <= args.rooms <= args.clients):
        parser.error("need 1 <= rooms <= clients <= 5000")
    if not (0 < args.rate <= 50 and 1 <= args.duration <= 600):
        parser.error("need 0 < rate <= 50 and 1 <= duration <= 600")
    if not (0 <= args.warmup < args.duration and 0 <= args.drain <= 60):
        parser.error("need 0 <= warmup < duration and 0 <= drain <= 60")
    if not (1 <= args.procs <= 16 and 1 <= args.runs <= 10 and 32 <= args.message_bytes <= 4000):
        parser.error("need 1 <= procs <= 16, 1 <= runs <= 10, 32 <= message-bytes <= 4000")

    OUT.mkdir(parents=True, exist_ok=True)
    sides = ["bare"] if args.bare_only else ["flask-chat"] + (["bare"] if args.compare else [])
    sources = {f"flask-chat@{rev}": checkout(rev) for rev in args.baseline}
    sides[1:1] = list(sources)
    runs = []
    for number in range(1, args.runs + 1):
        for side in sides:
            if side == "bare":
                result = run_bare(args)
            elif side == "flask-chat":
                result = run_flask_chat(args)
            else:
                result = run_flask_chat(args, side, sources[side])
            result["run"] = number
            runs.append(result)
            print(table([row(result)]), file=sys.stderr, flush=True)
    summary = {
        "command": " ".join(sys.argv),
        "clients": args.clients,
        "rooms": args.rooms,
        "rate_per_client": args.rate,
        "message_bytes": args.message_bytes,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "workers": args.workers,
        "limits": args.limits,
        "procs": args.procs,
        "ws_compression": args.ws_compression,
        "offered_deliveries_per_s": round(args.clients * args.rate * args.clients / args.rooms),
        "runs": runs,
        **ratios(runs),
    }
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = OUT / f"load-{stamp}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(table([row(r) for r in runs]))
    for side, m in summary["medians"].items():
        print(
            f"median {side}: server {m['server_us_per_delivery']} µs/delivery, "
            f"p99 {m['p99_ms']} ms, generator {m['generator_us_per_delivery']} µs/delivery"
        )
    if "server_us_ratio" in summary:
        print(
            f"flask-chat / bare: server µs per delivery x{summary['server_us_ratio']}, "
            f"p99 x{summary['p99_ratio']}"
        )
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
