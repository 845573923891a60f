"""The reference for bench/load.py: a bare Flask-SocketIO broadcast server.

    gunicorn -c deploy/gunicorn.conf.py --pythonpath bench 'bare_server:create_app()'

No storage, no login, no rate limits, no nginx: the `join` and `message` events of
docs/protocol.md with the same ack and broadcast shapes, so the same load generator drives
it. It runs as flask-chat's workers do (the same gunicorn config: one gevent worker per
process, simple-websocket) with python-socketio's Redis message queue between processes.
`BareServer` starts N such processes and a private redis-server, on free ports of
127.0.0.1, and stops them. What it lacks compared with flask-chat is exactly what a
stored, authenticated message costs; see bench/RESULTS.md.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"


def create_app():
    """One process of the bare server; BARE_REDIS_URL is its message queue."""
    from flask import Flask
    from flask_socketio import SocketIO, join_room

    app = Flask(__name__)
    socketio = SocketIO(app, message_queue=os.environ.get("BARE_REDIS_URL") or None)
    worker = os.environ.get("WORKER_ID", f"bare:{os.getpid()}")
    # unique across processes without shared state: the pid in the high bits
    ids = itertools.count(os.getpid() << 32)
    seqs: dict[int, itertools.count] = {}

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @socketio.on("join")
    def on_join(data):
        """`join {room}`: ack `{ok, room, worker, messages: [], more: false}`."""
        room = int(data["room"])
        join_room(f"chat:{room}")
        return {"ok": True, "room": room, "worker": worker, "messages": [], "more": False}

    @socketio.on("message")
    def on_message(data):
        """`message {room, message, client_id}`: broadcast to the room, ack `{ok, id, seq}`.

        `seq` counts per room and process (nothing is stored, so nothing orders rooms
        across processes); the broadcast has flask-chat's shape.
        """
        room = int(data["room"])
        message_id = next(ids)
        seq = next(seqs.setdefault(room, itertools.count(1)))
        wire = {
            "id": message_id,
            "seq": seq,
            "room": room,
            "username": "bare",
            "message": data["message"],
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "client_id": data.get("client_id"),
        }
        socketio.emit("message", wire, to=f"chat:{room}")
        return {"ok": True, "id": message_id, "seq": seq}

    return app


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


class BareServer:
    """`workers` bare processes (gunicorn, the deploy config) and their own redis-server."""

    def __init__(self, workers: int = 2, run_dir: Path | None = None):
        import urllib.request

        self.dir = Path(run_dir or tempfile.mkdtemp(prefix="bare-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: list[int] = []
        self._logs = []
        try:
            redis_port = _free_port()
            redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
            self._spawn(
                "redis",
                [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
                + ["--appendonly", "no", "--dir", str(self.dir)],
                {},
            )
            import redis

            url = f"redis://127.0.0.1:{redis_port}/0"

            def redis_answers() -> bool:
                try:
                    return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
                except redis.RedisError:
                    return False

            _wait(redis_answers, self.procs["redis"], "redis-server")
            for index in range(1, workers + 1):
                port = _free_port()
                self.ports.append(port)
                env = {
                    "BARE_REDIS_URL": url,
                    "WORKER_ID": f"b{index}",
                    "GUNICORN_BIND": f"127.0.0.1:{port}",
                }
                args = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
                args += ["--pythonpath", str(ROOT / "bench"), "bare_server:create_app()"]
                self._spawn(f"b{index}", args, env)
            for index, port in enumerate(self.ports, 1):

                def healthy(port=port) -> bool:
                    try:
                        url = f"http://127.0.0.1:{port}/healthz"
                        with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310
                            return r.status == 200
                    except OSError:
                        return False

                _wait(healthy, self.procs[f"b{index}"], f"bare worker b{index}")
        except BaseException:
            self.stop()
            raise

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def _spawn(self, name: str, args: list[str], env: dict) -> None:
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def processes(self) -> dict[str, int]:
        """Name -> pid of every serving process (each gunicorn worker, redis-server)."""
        from_proc = Path("/proc")
        found = {}
        for name, proc in self.procs.items():
            pid = proc.pid
            if name != "redis":
                children = (from_proc / f"{pid}/task/{pid}/children").read_text().split()
                pid = int(children[0]) if children else pid
            found[name] = pid
        return found

    def stop(self) -> None:
        for name in sorted(self.procs, key=lambda n: n == "redis"):  # workers, then Redis
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()
