"""Drive a running flask-chat over the network as a user would: HTTP forms and Socket.IO.

Used by the end-to-end and cluster tests (and bench/): nothing here knows about app internals.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
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
    ):
        self.user = user
        self.affinity = affinity or uuid.uuid4().hex
        self.received: list[dict] = []
        self.notices: list[dict] = []
        self._cond = threading.Condition()
        self.client = socketio.Client(reconnection=reconnection, request_timeout=10)
        self.client.on("message", self._on_message)
        self.client.on("notice", self._on_notice)
        headers = {"Cookie": user.cookie_header()}
        if origin is not None:
            headers["Origin"] = origin
        self.client.connect(
            f"{user.base_url}/?affinity={self.affinity}",
            headers=headers,
            transports=list(transports),
            wait_timeout=10,
        )

    def _on_message(self, data):
        with self._cond:
            self.received.append(data)
            self._cond.notify_all()

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
        return ack

    def send(self, room: int, text: str, client_id: str | None = None) -> dict:
        return self.call(
            "message", {"room": room, "message": text, "client_id": client_id or uuid.uuid4().hex}
        )

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float, what: str):
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.received), timeout=timeout):
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def wait_for_seq(self, room: int, seq: int, timeout: float = 10) -> None:
        self.wait_for(
            lambda got: any(m["room"] == room and m["seq"] >= seq for m in got),
            timeout,
            f"room {room} seq {seq}",
        )

    def seqs(self, room: int) -> list[int]:
        with self._cond:
            return [m["seq"] for m in self.received if m["room"] == room]

    @property
    def sid(self) -> str | None:
        return self.client.get_sid()

    def close(self) -> None:
        self.client.shutdown()
