"""Real clusters for tests: `flask-chat cluster` (workers, nginx, Redis) as a subprocess.

The cluster writes a JSON state file with every worker's id, port and pid, so a test can
talk to one worker directly, SIGKILL it, or restart the Redis it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import redis

from livechat import ChatUser, ServerProcess, free_port, wait_until
from servers import need

SOCKETIO_CHANNEL = "flask-socketio"  # Flask-SocketIO's Redis channel
# for tests that post hundreds of messages from one socket as fast as acks come back: the
# default message limits refuse that by design (tests/cluster/test_cluster_limits.py tests them)
MESSAGE_LIMITS_OFF = {"RATE_LIMIT_MESSAGE_CONNECTION": "off", "RATE_LIMIT_MESSAGE_USER": "off"}


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def redis_binary() -> str | None:
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin")


def need_cluster_servers() -> None:
    hint = "install it with deploy/install-system-deps.sh"
    need(nginx_binary() is not None, f"nginx is not installed; {hint}")
    need(redis_binary() is not None, f"redis-server is not installed; {hint}")


class RedisServer:
    """A redis-server this test owns, on a fixed free port, so it can be stopped and restarted."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
                "--logfile",
                str(self.tmp / "redis.log"),
            ],  # fmt: skip
            start_new_session=True,
        )
        wait_until(self.answers, 10, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def subscribers(self) -> int:
        return dict(self.client().pubsub_numsub(SOCKETIO_CHANNEL)).get(SOCKETIO_CHANNEL.encode(), 0)


class Cluster:
    """`flask-chat cluster --workers N` in the background, with its state file read back."""

    def __init__(
        self,
        tmp: Path,
        workers: int = 3,
        database_url: str = "",
        redis_url: str = "",
        env: dict[str, str] | None = None,
    ):
        """`env`: more environment for the cluster and its workers (e.g. RATE_LIMITS)."""
        self.tmp = tmp
        self.port = free_port()
        self.state_file = tmp / "cluster.json"
        args = [sys.executable, "-m", "app.cli", "cluster", "--workers", str(workers)]
        args += ["--port", str(self.port), "--state-file", str(self.state_file)]
        if redis_url:
            args += ["--redis-url", redis_url]
        self.server = ServerProcess(
            args,
            env={
                "FLASK_CHAT_INSTANCE": str(tmp / "instance"),
                "DATABASE_URL": database_url,
                "SECRET_KEY": "",
                "REDIS_URL": "",
                "FLASK_CHAT_ENV": "development",
                "LOG_FORMAT": "json",
                **(env or {}),
            },
            log_path=tmp / "cluster.log",
        )
        try:
            wait_until(self._ready, 60, "the cluster to start")
        except Exception:
            self.stop()
            raise
        self.state = json.loads(self.state_file.read_text())
        self.url = self.state["url"].rstrip("/")

    def _ready(self) -> bool:
        if self.server.proc.poll() is not None:
            raise RuntimeError(f"flask-chat cluster exited:\n{self.server.output()}")
        return self.state_file.exists()

    @property
    def workers(self) -> list[dict]:
        return self.state["workers"]

    def worker(self, name: str) -> dict:
        return next(w for w in self.workers if w["name"] == name)

    def worker_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.worker(name)['port']}"

    def signal_worker(self, name: str, signum: int) -> None:
        """Signal a worker's whole process group: gunicorn's master and its one worker.

        SIGKILL to both is a worker process that is gone (a crash, the OOM killer); SIGTERM
        reaches the worker through the master as well, as in a normal stop.
        """
        os.killpg(self.worker(name)["pid"], signum)

    def worker_alive(self, name: str) -> bool:
        try:
            os.kill(self.worker(name)["pid"], 0)
        except ProcessLookupError:
            return False
        # a zombie until the supervisor reaps it: look at its state
        with contextlib.suppress(FileNotFoundError):
            stat = Path(f"/proc/{self.worker(name)['pid']}/stat").read_text()
            return stat.split(") ", 1)[1][0] != "Z"
        return False

    def output(self) -> str:
        """Everything the cluster printed so far (its own lines and the workers' logs)."""
        self.server.output()  # flushes
        return self.server.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.server.stop()


def cluster_on_backend(request, tmp_path_factory, name: str, env: dict[str, str]) -> Cluster:
    """A cluster on the backend of a fixture parametrised with "sqlite" / "postgresql"."""
    need_cluster_servers()
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_database_url")
    return Cluster(
        tmp_path_factory.mktemp(f"{name}-{request.param}"), database_url=database_url, env=env
    )


def sockets_on_workers(users: list[ChatUser], room: int, wanted: int, **socket_options):
    """One joined socket per distinct worker (up to `wanted`), cycling through the users.

    Each socket has a new random affinity key, so nginx spreads them; bounded attempts.
    """
    by_worker: dict[str, object] = {}
    extra = []
    for attempt in range(40):
        user = users[attempt % len(users)]
        sock = user.socket(**socket_options)
        sock.join(room)
        if sock.worker in by_worker:
            extra.append(sock)
        else:
            by_worker[sock.worker] = sock
        if len(by_worker) >= wanted:
            break
    for sock in extra:
        sock.close()
    return by_worker


def make_users(base_url: str, count: int, prefix: str = "u") -> list[ChatUser]:
    suffix = uuid.uuid4().hex[:6]
    return [ChatUser(base_url, f"{prefix}{i}-{suffix}").signup() for i in range(count)]


def kill_process_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def post_form_to(base_url: str, person: ChatUser, path: str, **data):
    """Post a form as `person` to `base_url` (e.g. one worker directly), with a CSRF token
    from that base's account page."""
    page = person.http.get(base_url + "/account", timeout=10)
    page.raise_for_status()
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return person.http.post(
        base_url + path, data={"csrf_token": token, **data}, allow_redirects=False, timeout=10
    )


def socket_on(cluster: Cluster, worker: str, person: ChatUser, room: int):
    """A socket of `person` on one worker directly, joined to `room`."""
    sock = person.socket(url=cluster.worker_url(worker))
    assert sock.join(room)["worker"] == worker
    return sock
