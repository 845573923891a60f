"""What each recipient of a room broadcast costs the server: app/realtime/fanout.py on and off.

    python bench/fanout_cost.py --clients 20 200 --broadcasts 500 --runs 2

For every run, mode (FAST_FANOUT off, then on) and client count N: a gevent server process
in the shape of a worker (Flask-SocketIO on gevent's WSGI server, simple-websocket, the
app's codec, manager and `transport.install`), N lean WebSocket clients (bench/leanio.py)
joined to one room on 127.0.0.1, and a control client that asks the server to emit
`--broadcasts` broadcasts of a chat message to the room (yielding to the writers after
each, as one post per handler does; `--burst` emits them back to back instead, so writers
find several queued). The run ends when every client has received every broadcast.
Reported: the server's CPU per delivery (broadcasts x N), and per extra recipient (the
slope between the smallest and each larger N, which leaves the per-broadcast cost out).
No storage, no login: only the fan-out. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from leanio import LeanSocket, Loop  # noqa: E402

MESSAGE = {
    "id": 123456,
    "seq": 4242,
    "room": 7,
    "username": "someone",
    "message": "a chat message of about sixty-four characters, typed by a person",
    "created_at": "2026-11-25T13:00:00.000Z",
    "client_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
}


def serve(port: int, fast_fanout: bool) -> None:
    """The server process: one room, `join` and `blast {count, burst}` events."""
    from gevent import monkey

    monkey.patch_all()

    from flask import Flask
    from flask_socketio import SocketIO, join_room

    from app import codec
    from app.realtime import transport
    from app.realtime.fanout import PreframingManager

    app = Flask(__name__)
    manager = PreframingManager()
    manager.preframe = fast_fanout
    socketio = SocketIO(
        app, async_mode="gevent", client_manager=manager, json=codec, cors_allowed_origins="*"
    )
    transport.install(socketio.server, fast_fanout=fast_fanout)

    @socketio.on("join")
    def on_join(data):
        join_room("fanout")
        return {"ok": True}

    @socketio.on("blast")
    def on_blast(data):
        for _ in range(int(data["count"])):
            socketio.emit("message", MESSAGE, to="fanout")
            if not data.get("burst"):
                socketio.sleep(0)  # the writers run, as between two posts' handlers
        return {"ok": True}

    print("ready", flush=True)
    socketio.run(app, host="127.0.0.1", port=port, log_output=False)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(url: str, on_event) -> LeanSocket:
    deadline = time.monotonic() + 15
    while True:
        try:
            return LeanSocket(on_event).connect(url, timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def one_run(fast_fanout: bool, clients: int, broadcasts: int, burst: bool) -> float:
    """Server CPU seconds spent while `broadcasts` reached `clients` clients."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--fast-fanout", str(fast_fanout)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    loop = Loop()
    sockets: list[LeanSocket] = []
    try:
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the bench server did not start")
        received = [0]

        def count(payload: bytes) -> None:
            received[0] += 1

        for _ in range(clients):
            lean = connect(url, count)
            assert lean.call("join", {})["ok"]
            sockets.append(lean)
            loop.add(lean)
        control = connect(url, None)
        sockets.append(control)
        expected = clients * broadcasts
        before = cpu_seconds(server.pid)
        acked: list = []
        control.emit("blast", {"count": broadcasts, "burst": burst}, acked.append)
        loop.add(control)
        deadline = time.monotonic() + 120
        while (received[0] < expected or not acked) and time.monotonic() < deadline:
            loop.run(time.monotonic() + 0.05)
        spent = cpu_seconds(server.pid) - before
        if received[0] != expected:
            raise RuntimeError(f"received {received[0]} of {expected} deliveries")
        return spent
    finally:
        for lean in sockets:
            lean.close()
        loop.close()
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--broadcasts", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--burst", action="store_true", help="emit without yielding")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fast-fanout", default="True", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.fast_fanout == "True")
        return 0
    if not all(1 <= n <= 500 for n in args.clients) or not 1 <= args.broadcasts <= 5000:
        parser.error("--clients 1..500, --broadcasts 1..5000")
    clients = sorted(set(args.clients))
    best: dict[tuple[bool, int], float] = {}
    for run in range(args.runs):
        for fast in (False, True):
            for n in clients:
                spent = one_run(fast, n, args.broadcasts, args.burst)
                key = (fast, n)
                best[key] = min(best.get(key, spent), spent)
                print(
                    f"run {run + 1} FAST_FANOUT={'on' if fast else 'off'} N={n}: "
                    f"{spent * 1e6 / (n * args.broadcasts):.1f} µs per delivery",
                    flush=True,
                )
    print(f"\nbest of {args.runs} runs, {args.broadcasts} broadcasts each", end="")
    print(" (burst)" if args.burst else "")
    print(f"{'N':>5} {'off µs/delivery':>16} {'on µs/delivery':>15} {'on/off':>7}")
    for n in clients:
        off, on = (best[(fast, n)] * 1e6 / (n * args.broadcasts) for fast in (False, True))
        print(f"{n:>5} {off:>16.1f} {on:>15.1f} {on / off:>7.2f}")
    small = clients[0]
    for n in clients[1:]:
        off, on = (
            (best[(fast, n)] - best[(fast, small)]) * 1e6 / ((n - small) * args.broadcasts)
            for fast in (False, True)
        )
        print(f"per extra recipient (N={small}->{n}): off {off:.1f} µs, on {on:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
