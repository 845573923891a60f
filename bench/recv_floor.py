"""What one received delivery costs the load generator, without any server to share the box.

    python bench/recv_floor.py --clients 200 --rate 4000 --duration 6

A child process plays the server: it writes pre-built `42["message",{...}]` WebSocket frames
(the shape flask-chat broadcasts) round-robin over `--clients` loopback TCP connections, 20
at a time, at `--rate` frames per second. This process reads them twice over, one side after
the other, and reports its own CPU per frame:

- `floor`: an epoll loop that only reads each socket (no parsing): the kernel's share;
- `leanio`: bench/leanio.py's Loop and the hot-path parse of bench/load.py (id, send time).

127.0.0.1 only; every loop is bounded by `--duration`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import select
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from leanio import READ_SIZE, LeanSocket, Loop  # noqa: E402


def play_server(clients: int, rate: int, duration: float, port_box) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(clients + 10)
    port_box.put(listener.getsockname()[1])
    conns = [listener.accept()[0] for _ in range(clients)]
    for conn in conns:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start, total = time.monotonic(), int(rate * duration)
    for k in range(0, total, 20):  # bounded
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for n in range(k, min(k + 20, total)):
            wire = {
                "id": n,
                "seq": n,
                "room": 7,
                "username": "bench3-abcdef",
                "message": f"{time.time_ns()}|abcdef12|".ljust(64, "x"),
                "created_at": "2026-11-24T17:56:04.516Z",
                "client_id": "3f0c" * 8,
            }
            packet = ("42" + json.dumps(["message", wire])).encode()
            conns[n % clients].sendall(b"\x81\x7e" + len(packet).to_bytes(2, "big") + packet)
    time.sleep(1)
    for conn in conns:
        conn.close()


def one_side(side: str, args) -> dict:
    box = mp.Queue()
    server = mp.Process(target=play_server, args=(args.clients, args.rate, args.duration, box))
    server.start()
    port = box.get(timeout=10)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.clients)]
    frames = [0]
    until = time.monotonic() + args.duration + 0.5
    cpu = time.process_time()
    if side == "floor":
        epoll, by_fd = select.epoll(), {}
        for s in socks:
            s.setblocking(False)
            epoll.register(s.fileno(), select.EPOLLIN)
            by_fd[s.fileno()] = s
        reads = 0
        while time.monotonic() < until:  # bounded
            for fd, _ in epoll.poll(0.05):
                reads += 1
                frames[0] += by_fd[fd].recv(READ_SIZE).count(b"\x81\x7e")
    else:
        loop = Loop()
        for s in socks:
            lean = LeanSocket()
            lean.sock = s

            def on_event(payload: bytes, lean=lean) -> None:
                i = payload.find(b'"id":', 11) + 5
                int(payload[i : payload.find(b",", i)])
                k = payload.find(b'"', payload.find(b'"message":', i) + 10) + 1
                lean.received_ns - int(payload[k : payload.find(b"|", k)])
                frames[0] += 1

            lean.on_event = on_event
            loop.add(lean)
        loop.run(until, batch=args.batch_ms / 1000)
        reads = loop.reads
    used = time.process_time() - cpu
    server.join(timeout=10)
    for s in socks:
        s.close()
    return {
        "side": side,
        "frames": frames[0],
        "reads": reads,
        "us_per_frame": used / frames[0] * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=int, default=4000, help="frames per second, all clients")
    parser.add_argument("--duration", type=float, default=6)
    parser.add_argument("--batch-ms", type=float, default=5.0, help="as bench/load.py's")
    args = parser.parse_args()
    if not (1 <= args.clients <= 2000 and 1 <= args.rate <= 100_000 and 1 <= args.duration <= 60):
        parser.error("need 1 <= clients <= 2000, 1 <= rate <= 100000, 1 <= duration <= 60")
    for side in ("floor", "leanio"):
        r = one_side(side, args)
        print(
            f"{r['side']:<7} {r['frames']} frames in {r['reads']} reads: "
            f"{r['us_per_frame']:.1f} µs of this process's CPU per frame"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
