"""`flask-chat cluster`: the scaled-out shape on one machine, in the foreground.

It applies the migrations once, starts N gunicorn/gevent worker processes on free ports,
a private redis-server on a free port (unless a Redis URL is given) and nginx rendered from
the real template in nginx/, prints where to connect, and stops everything it started on
Ctrl-C or SIGTERM. A child that dies is reported; the rest keep serving.

For tests and the benchmark it also writes a JSON state file (worker ids, ports, pids) and
prints the same JSON as one line starting with `{"event": "ready"`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from app.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
NGINX_TEMPLATE = ROOT / "nginx" / "flask-chat.conf.j2"
STATIC_DIR = Path(__file__).resolve().parent / "static"
SYSTEM_DEPS_HINT = "install it with: sudo bash deploy/install-system-deps.sh"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class ClusterError(RuntimeError):
    """The cluster could not start; the message says what is missing."""


@dataclass
class Child:
    name: str
    kind: str  # "worker", "nginx" or "redis"
    proc: subprocess.Popen
    port: int
    reported: bool = False

    def describe(self) -> dict:
        return {"name": self.name, "pid": self.proc.pid, "port": self.port}


@dataclass
class Cluster:
    workers: int
    port: int
    host: str = "127.0.0.1"
    redis_url: str = ""
    state_file: Path | None = None
    ws_compression: bool = False
    # RATE_LIMITS: the workers read it from the environment; nginx's limits follow it here
    rate_limits: bool = True
    generated_secret: bool = False
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flask-chat-")))
    children: list[Child] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # -- starting ---------------------------------------------------------------------------

    def start(self) -> dict:
        env = self._worker_env()
        nginx = _find_binary("nginx")
        if not self.redis_url:
            self.redis_url = self._start_redis()
        env["REDIS_URL"] = self.redis_url
        self._migrate(env)
        for index in range(1, self.workers + 1):
            self._start_worker(index, env)
        for child in self._of_kind("worker"):
            _wait_http(f"http://127.0.0.1:{child.port}/healthz", child.proc, child.name)
        self._start_nginx(nginx)
        state = self.state()
        if self.state_file:
            tmp = Path(f"{self.state_file}.tmp")
            tmp.write_text(json.dumps(state, indent=2))
            tmp.replace(self.state_file)
        return state

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # every worker must sign and read the same session cookies
        if not env.get("SECRET_KEY"):
            env["SECRET_KEY"] = secrets.token_urlsafe(48)
            self.generated_secret = True
        instance = Path(env.get("FLASK_CHAT_INSTANCE") or Path.cwd() / "instance").resolve()
        env["FLASK_CHAT_INSTANCE"] = str(instance)
        env.setdefault("LOG_FORMAT", "json")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start_redis(self) -> str:
        binary = _find_binary("redis-server")
        port = free_port()
        args = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.run_dir),
            "--logfile", str(self.run_dir / "redis.log"),
        ]  # fmt: skip
        child = self._spawn("redis", "redis", args, port)
        url = f"redis://127.0.0.1:{port}/0"
        import redis

        def answers() -> bool:
            try:
                return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
            except redis.RedisError:
                return False

        _wait(answers, child.proc, "redis-server")
        return url

    def _migrate(self, env: dict[str, str]) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            env={**env, "REDIS_URL": "", "WORKER_ID": "migrate"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise ClusterError(f"migrations failed:\n{done.stdout}{done.stderr}")

    def _start_worker(self, index: int, env: dict[str, str]) -> None:
        port = free_port()
        worker_id = f"w{index}"
        args = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "app.wsgi:app"]
        worker_env = {
            **env,
            "WORKER_ID": worker_id,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "FORWARDED_HOPS": "1",  # nginx in front sets X-Forwarded-*
        }
        self._spawn(worker_id, "worker", args, port, env=worker_env)

    def _start_nginx(self, binary: str) -> None:
        conf = self.run_dir / "nginx.conf"
        conf.write_text(self.render_nginx())
        error_log = self.run_dir / "nginx-error.log"
        args = [binary, "-p", str(self.run_dir), "-c", str(conf), "-e", str(error_log)]
        child = self._spawn("nginx", "nginx", args, self.port)

        def answers() -> bool:
            return _http_ok(f"http://{self.host}:{self.port}/healthz")

        try:
            _wait(answers, child.proc, "nginx")
        except ClusterError as exc:
            log = error_log.read_text(errors="replace")[-2000:] if error_log.exists() else ""
            raise ClusterError(f"{exc}\n{log}") from None

    def render_nginx(self) -> str:
        template = jinja2.Template(NGINX_TEMPLATE.read_text(), trim_blocks=True, lstrip_blocks=True)
        return template.render(
            run_as_root=os.geteuid() == 0,
            worker_processes=1,
            foreground=True,
            run_dir=self.run_dir,
            error_log=self.run_dir / "nginx-error.log",
            access_log="off",
            worker_connections=8192,
            mime_types=_mime_types(),
            upstreams=[f"127.0.0.1:{c.port}" for c in self._of_kind("worker")],
            listen=f"{self.host}:{self.port}",
            static_dir=STATIC_DIR,
            strip_ws_compression=not self.ws_compression,
            rate_limits=self.rate_limits,
        )

    def _spawn(
        self, name: str, kind: str, args: list[str], port: int, env: dict | None = None
    ) -> Child:
        proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            # its own process group: Ctrl-C reaches only this supervisor, which stops
            # the children in order
            start_new_session=True,
            preexec_fn=_die_with_parent,  # safe here: the supervisor runs no threads
        )
        child = Child(name, kind, proc, port)
        self.children.append(child)
        return child

    def _of_kind(self, kind: str) -> list[Child]:
        return [c for c in self.children if c.kind == kind]

    def state(self) -> dict:
        redis_child = self._of_kind("redis")
        nginx = self._of_kind("nginx")
        return {
            "event": "ready",
            "url": self.url,
            "supervisor_pid": os.getpid(),
            "run_dir": str(self.run_dir),
            "redis_url": self.redis_url,
            "redis": redis_child[0].describe() if redis_child else None,
            "nginx": nginx[0].describe() if nginx else None,
            "workers": [c.describe() for c in self._of_kind("worker")],
        }

    # -- running ------------------------------------------------------------------------------

    def supervise(self, stop: threading.Event) -> int:
        """Wait for a stop request, reporting children that exit; 1 if the cluster cannot serve."""
        while not stop.wait(0.5):
            for child in self.children:
                code = child.proc.poll()
                if code is None or child.reported:
                    continue
                child.reported = True
                _say(f"{child.kind} {child.name} (pid {child.proc.pid}) exited with code {code}")
                print(json.dumps({"event": "exited", "name": child.name, "code": code}), flush=True)
            if any(c.reported for c in self._of_kind("nginx")):
                _say("nginx is gone: stopping the cluster")
                return 1
            if all(c.reported for c in self._of_kind("worker")):
                _say("every worker is gone: stopping the cluster")
                return 1
        return 0

    # -- stopping -----------------------------------------------------------------------------

    def stop(self) -> None:
        """nginx first (no new requests; its idle upstream connections would hold each
        worker's graceful drain for gunicorn's keepalive), then the workers, then Redis."""
        for kind in ("nginx", "worker", "redis"):
            group = [c for c in self._of_kind(kind) if c.proc.poll() is None]
            for child in group:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT
            for child in group:
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _say(f"{child.kind} {child.name} did not stop in time: killing it")
                    child.proc.kill()
                    child.proc.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.state_file:
            with contextlib.suppress(FileNotFoundError):
                Path(self.state_file).unlink()


def run_cluster(
    workers: int,
    port: int,
    host: str = "127.0.0.1",
    redis_url: str = "",
    state_file: str | None = None,
    ws_compression: bool = False,
) -> int:
    """The `flask-chat cluster` command: start, serve in the foreground, stop on a signal."""
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        rate_limits = Settings.from_env().rate_limits
    except ConfigError as exc:
        _say(f"cannot start: {exc}")
        return 1
    cluster = Cluster(
        rate_limits=rate_limits,
        workers=workers,
        port=port or free_port(),
        host=host,
        redis_url=redis_url,
        state_file=Path(state_file) if state_file else None,
        ws_compression=ws_compression,
    )
    try:
        state = cluster.start()
    except (ClusterError, OSError, subprocess.SubprocessError) as exc:
        _say(f"cannot start: {exc}")
        cluster.stop()
        return 1
    worker_list = ", ".join(
        f"{w['name']} on :{w['port']} (pid {w['pid']})" for w in state["workers"]
    )
    _say(f"{workers} workers: {worker_list}")
    _say(f"redis: {state['redis_url']}" + ("" if state["redis"] else " (external)"))
    if not cluster.rate_limits:
        _say("RATE_LIMITS=off: every rate limit is off, nginx's and the workers' (load tests only)")
    if cluster.generated_secret:
        _say("SECRET_KEY was not set: generated one for this run (logins end when it stops)")
    _say(f"open {cluster.url}  (Ctrl-C stops everything)")
    print(json.dumps(state), flush=True)
    try:
        code = cluster.supervise(stop)
    finally:
        _say("stopping")
        cluster.stop()
    return code


# -- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _say(text: str) -> None:
    print(f"flask-chat cluster: {text}", flush=True)


def _find_binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not found:
        raise ClusterError(f"{name} is not installed; {SYSTEM_DEPS_HINT}")
    return found


def _mime_types() -> str:
    for candidate in ("/etc/nginx/mime.types", "/usr/local/etc/nginx/mime.types"):
        if Path(candidate).exists():
            return candidate
    raise ClusterError(f"nginx's mime.types was not found; {SYSTEM_DEPS_HINT}")


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the supervisor dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own URL
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait_http(url: str, proc: subprocess.Popen, what: str) -> None:
    _wait(lambda: _http_ok(url), proc, what)


def _wait(check, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        if proc.poll() is not None:
            raise ClusterError(f"{what} exited with code {proc.returncode} while starting")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} did not answer within {START_TIMEOUT:.0f}s")
        time.sleep(0.1)
