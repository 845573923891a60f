"""Drive a running flask-chat over the network as a user would: HTTP forms and Socket.IO.

Used by the end-to-end and cluster tests (and bench/): nothing here knows about app internals.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests
import socketio

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class ServerProcess:
    """A flask-chat process started for a test, stopped (and its output kept) at the end."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self, url: str, timeout: float = 30) -> None:
        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                return requests.get(url, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout, f"{url} to answer")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


EMBEDDED_ENV = {
    "SECRET_KEY": "",
    "DATABASE_URL": "",
    "REDIS_URL": "",
    "FLASK_CHAT_ENV": "development",
}


def embedded_env(tmp: Path, **env: str) -> dict[str, str]:
    """The environment of the embedded default in `tmp`, whatever the caller's shell has set."""
    return {"FLASK_CHAT_INSTANCE": str(tmp / "instance"), **EMBEDDED_ENV, **env}


def start_serve(tmp: Path, **env: str) -> tuple[ServerProcess, str]:
    """`flask-chat serve` (one process, SQLite in `tmp`) on a free port, healthy; and its URL.

    `env` adds or overrides settings (e.g. `RATE_LIMITS="off"`). The log is `tmp/serve.log`.
    """
    port = free_port()
    server = ServerProcess(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=embedded_env(tmp, **env),
        log_path=tmp / "serve.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        server.wait_healthy(base + "/healthz")
    except BaseException:
        server.stop()
        raise
    return server, base


class ChatUser:
    """One person with a browser session: signs up and logs in through the real forms."""

    def __init__(self, base_url: str, username: str, password: str = "correct horse battery"):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.http = requests.Session()

    def _csrf(self, path: str) -> str:
        page = self.http.get(self.base_url + path, timeout=10)
        page.raise_for_status()
        return CSRF_RE.search(page.text).group(1)

    def signup(self) -> ChatUser:
        response = self.http.post(
            self.base_url + "/criar_conta_db",
            data={
                "csrf_token": self._csrf("/criar_conta"),
                "username": self.username,
                "password": self.password,
                "email": f"{self.username}@example.com",
                "idade": "30",
            },
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 303, response.text[:500]
        return self

    def login(self) -> ChatUser:
        self.http.cookies.clear()
        response = self.http.post(
            self.base_url + "/login",
            data={
                "csrf_token": self._csrf("/"),
                "username": self.username,
                "password": self.password,
            },
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 303, response.text[:500]
        return self

    def create_room(self, name: str) -> int:
        response = self.http.post(
            self.base_url + "/create_chat",
            data={"csrf_token": self._csrf("/dashboard"), "chat_name": name},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 303, response.text[:500]
        return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])

    def history(self, room: int, before: int | None = None, limit: int = 100) -> dict:
        params = {"limit": limit, **({"before": before} if before else {})}
        response = self.http.get(
            f"{self.base_url}/api/chats/{room}/messages", params=params, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def all_messages(self, room: int) -> list[dict]:
        """The room's whole stored history through the API, oldest first."""
        messages, before = [], None
        while True:
            page = self.history(room, before)
            messages = page["messages"] + messages
            if not page["more"]:
                return messages
            before = page["next_before"]

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)

    def socket(self, **kwargs) -> LiveSocket:
        return LiveSocket(self, **kwargs)


class LiveSocket:
    """A real python-socketio client that records what it receives and lets tests wait on it."""

    def __init__(
        self,
        user: ChatUser,
        transports=("websocket",),
        affinity: str | None = None,
        origin: str | None = None,
        reconnection: bool = False,
        resync: bool = False,
        url: str | None = None,
    ):
        """`resync`: behave like chat.js after a lost connection or a gap in `seq` — re-join
        every joined room with `since` = the last contiguous seq, and keep what that returns
        in `recovered`. `url`: connect here (a single worker) instead of the user's base URL.
        """
        self.user = user
        self.affinity = affinity or uuid.uuid4().hex
        self.received: list[dict] = []  # broadcasts, in arrival order
        self.recovered: list[dict] = []  # messages from join acks
        self.notices: list[dict] = []
        self.workers: list[str] = []  # the worker of every successful join, in order
        self.connects = 0
        self.disconnects = 0
        self.disconnect_reasons: list[str | None] = []
        self.resyncs = 0
        self.synced_connect = 1  # the connection whose rooms are joined (the first: by the test)
        self._cursor: dict[int, int] = {}  # per room: the seq the client had before joining
        self._resync = resync
        self._resyncing = threading.Lock()
        self._cond = threading.Condition()
        self.client = socketio.Client(
            reconnection=reconnection,
            request_timeout=10,
            reconnection_delay=0.2,
            reconnection_delay_max=1,
        )
        self.client.on("connect", self._on_connect)
        self.client.on("disconnect", self._on_disconnect)
        self.client.on("message", self._on_message)
        self.client.on("notice", self._on_notice)
        headers = {"Cookie": user.cookie_header()}
        if origin is not None:
            headers["Origin"] = origin
        self.client.connect(
            f"{(url or user.base_url).rstrip('/')}/?affinity={self.affinity}",
            headers=headers,
            transports=list(transports),
            wait_timeout=10,
        )

    def _on_connect(self):
        with self._cond:
            self.connects += 1
            again = self.connects > 1
            self._cond.notify_all()
        if again and self._resync:
            # a handler must not wait for an ack itself: the read loop delivers it
            threading.Thread(target=self.resync, daemon=True).start()

    def _on_disconnect(self, reason=None):
        with self._cond:
            if (
                reason == self.client.reason.TRANSPORT_ERROR
                and self.disconnect_reasons[-1:] == [self.client.reason.SERVER_DISCONNECT]
                and self.connects == self.disconnects
            ):
                # the echo of the shutdown below: the client library may report the socket
                # it still had open (and we closed) once more, after the server's DISCONNECT
                return
            self.disconnects += 1
            self.disconnect_reasons.append(reason)
            self._cond.notify_all()
        # python-engineio's client leaves the socket of a WebSocket the server dropped open
        if reason == self.client.reason.CLIENT_DISCONNECT:
            return  # our own close(): engineio closes it
        ws = getattr(self.client.eio, "ws", None)
        if ws is not None and hasattr(ws, "shutdown"):
            ws.shutdown()

    @property
    def ready_to_post(self) -> bool:
        """Connected, and every room re-joined on this connection."""
        with self._cond:
            return self.client.connected and self.synced_connect == self.connects

    def resync(self) -> None:
        """Re-join every joined room with `since`, as the browser does after a disconnect."""
        with self._resyncing:
            with self._cond:
                connection = self.connects
            for room in list(self._cursor):
                for _ in range(100):  # bounded: each round returns at most SINCE_CAP messages
                    try:
                        ack = self.call("join", {"room": room, "since": self.last_seq(room)})
                    except (socketio.exceptions.SocketIOError, TimeoutError):
                        return  # the next connect event resyncs again
                    if not ack.get("ok"):
                        return
                    with self._cond:
                        self.recovered.extend(ack["messages"])
                        self.workers.append(ack["worker"])
                        self._cond.notify_all()
                    if not ack["more"]:
                        break
            with self._cond:
                self.resyncs += 1
                self.synced_connect = max(self.synced_connect, connection)
                self._cond.notify_all()

    def _on_message(self, data):
        with self._cond:
            self.received.append(data)
            gap = self._resync and data["seq"] > self._contiguous_seq(data["room"]) + 1
            self._cond.notify_all()
        if gap:
            threading.Thread(target=self.resync, daemon=True).start()

    def _on_notice(self, data):
        with self._cond:
            self.notices.append(data)
            self._cond.notify_all()

    def call(self, event: str, data: dict, timeout: float = 10) -> dict:
        return self.client.call(event, data, timeout=timeout)

    def join(self, room: int, since: int | None = None) -> dict:
        payload = {"room": room} if since is None else {"room": room, "since": since}
        ack = self.call("join", payload)
        assert ack["ok"], ack
        with self._cond:
            self.workers.append(ack["worker"])
            self.recovered.extend(ack["messages"])
            if room not in self._cursor:
                # an empty ack without `since`: the room has no messages yet
                first = ack["messages"][0]["seq"] - 1 if ack["messages"] else 0
                self._cursor[room] = since if since is not None else first
        return ack

    @property
    def worker(self) -> str | None:
        """The worker this connection was served by at its latest join."""
        with self._cond:
            return self.workers[-1] if self.workers else None

    def merged(self, room: int) -> list[dict]:
        """What a client shows: broadcasts and join acks, one per id, ordered by seq."""
        with self._cond:
            by_id = {m["id"]: m for m in self.recovered + self.received if m["room"] == room}
        return sorted(by_id.values(), key=lambda m: m["seq"])

    def last_seq(self, room: int) -> int:
        with self._cond:
            return self._contiguous_seq(room)

    def _contiguous_seq(self, room: int) -> int:
        # the highest seq with nothing missing below it (since the first join)
        seen = {m["seq"] for m in self.recovered + self.received if m["room"] == room}
        seq = self._cursor.get(room) or 0
        while seq + 1 in seen:
            seq += 1
        return seq

    def send(self, room: int, text: str, client_id: str | None = None) -> dict:
        return self.call(
            "message", {"room": room, "message": text, "client_id": client_id or uuid.uuid4().hex}
        )

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float, what: str):
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.received), timeout=timeout):
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait, without polling, until `check()` holds (checked after every event)."""
        with self._cond:
            if not self._cond.wait_for(check, timeout=timeout):
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def wait_merged(self, room: int, ids: set[int], timeout: float = 20) -> None:
        """Wait until the client shows every message in `ids` (by broadcast or resync)."""

        def shown():
            return ids <= {m["id"] for m in self.recovered + self.received if m["room"] == room}

        self.wait_until(shown, timeout, f"{len(ids)} messages of room {room}")

    def wait_for_seq(self, room: int, seq: int, timeout: float = 10) -> None:
        self.wait_for(
            lambda got: any(m["room"] == room and m["seq"] >= seq for m in got),
            timeout,
            f"room {room} seq {seq}",
        )

    def seqs(self, room: int) -> list[int]:
        with self._cond:
            return [m["seq"] for m in self.received if m["room"] == room]

    def wait_closed_by_server(self, timeout: float) -> None:
        """Wait until the server has closed this connection (and the client has seen it)."""
        self.wait_until(lambda: self.disconnects >= 1, timeout, "the server to close the socket")
        # the client clears `connected` just after its disconnect handler ran
        wait_until(lambda: not self.client.connected, 1, "the client to see it closed")

    @property
    def sid(self) -> str | None:
        return self.client.get_sid()

    def close(self) -> None:
        self.client.shutdown()


def connect_refusal(url: str, cookie: str) -> dict | None:
    """Try to open a Socket.IO connection with this cookie: the `connect_error` payload when
    refused (e.g. `{"message": "unauthorized"}`), None when it connected (then closed)."""
    client = socketio.Client(reconnection=False)
    errors: list = []
    client.on("connect_error", lambda data=None: errors.append(data))
    try:
        client.connect(url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return errors[0] if errors else {"message": "no connect_error"}
    finally:
        client.shutdown()
    return None
