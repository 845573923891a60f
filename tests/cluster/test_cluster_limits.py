"""Abuse limits on the real cluster: shared by every worker through Redis, nginx's first line,
and RATE_LIMITS=off for load tests.

Each test that counts per-address limits sends from its own loopback address (127.0.0.x), so
the tests do not share an allowance; nginx and the app see that address as the client's.
"""

from __future__ import annotations

import re
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from requests.adapters import HTTPAdapter

from app.limits import DEFAULT_LIMITS, parse_rates
from cluster_helpers import Cluster, need_cluster_servers, sockets_on_workers
from livechat import ROOT, ChatUser

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
NGINX_PAGE = "<center>nginx</center>"  # nginx's own error page, not the app's
(SIGNUPS,) = parse_rates(DEFAULT_LIMITS["signup.address"])
USER_MESSAGES = 10  # per minute: a refill (6 s) never happens within the test


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """2 workers with the default limits, except a per-user message limit without refill.

    The app closes Engine.IO sessions that never complete the Socket.IO CONNECT after
    SOCKET_CONNECT_TIMEOUT; the nginx limit_conn test holds 200 of them open while it opens
    them all, so the timeout is longer here than opening them can take.
    """
    need_cluster_servers()
    cluster = Cluster(
        tmp_path_factory.mktemp("limited"),
        workers=2,
        env={
            "RATE_LIMIT_MESSAGE_USER": f"{USER_MESSAGES}/minute",
            "SOCKET_CONNECT_TIMEOUT": "120s",
        },
    )
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def unlimited(tmp_path_factory):
    need_cluster_servers()
    cluster = Cluster(tmp_path_factory.mktemp("unlimited"), workers=1, env={"RATE_LIMITS": "off"})
    yield cluster
    cluster.stop()


class FromAddress(HTTPAdapter):
    """Connect from a chosen local address (any 127.0.0.x works on loopback)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(address: str) -> requests.Session:
    http = requests.Session()
    http.mount("http://", FromAddress(address))
    return http


def signup(base_url: str, address: str, username: str) -> requests.Response:
    """One person's sign-up through the real form, from `address`."""
    http = session_from(address)
    page = http.get(base_url + "/criar_conta", timeout=10)
    return http.post(
        base_url + "/criar_conta_db",
        data={
            "csrf_token": CSRF_RE.search(page.text).group(1),
            "username": username,
            "password": "correct horse battery",
            "email": f"{username}@example.com",
            "idade": "30",
        },
        allow_redirects=False,
        timeout=10,
    )


def signup_burst(base_url: str, address: str, count: int) -> list[requests.Response]:
    """`count` sign-ups from one address, four at a time (bounded)."""
    prefix = uuid.uuid4().hex[:6]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda i: signup(base_url, address, f"b{prefix}-{i}"), range(count)))


def post_burst(base_url: str, address: str, count: int) -> list[requests.Response]:
    """`count` sign-up POSTs at once from one address, all with one valid form token."""
    http = session_from(address)
    token = CSRF_RE.search(http.get(base_url + "/criar_conta", timeout=10).text).group(1)
    cookies = http.cookies.get_dict()

    def post(i: int) -> requests.Response:
        one = session_from(address)
        one.cookies.update(cookies)
        data = {"csrf_token": token, "username": f"burst{i}", "password": "correct horse battery"}
        data |= {"email": f"burst{i}@example.com", "idade": "30"}
        return one.post(base_url + "/criar_conta_db", data=data, allow_redirects=False, timeout=10)

    with ThreadPoolExecutor(max_workers=20) as pool:
        return list(pool.map(post, range(count)))


def is_app_page(response: requests.Response) -> bool:
    return 'action="/criar_conta_db"' in response.text and NGINX_PAGE not in response.text


def test_the_per_user_limit_is_shared_by_sockets_of_one_user_on_different_workers(limited):
    alice = ChatUser(limited.url, f"alice-{uuid.uuid4().hex[:6]}").signup()
    room = alice.create_room(f"shared-{uuid.uuid4().hex[:6]}")
    by_worker = sockets_on_workers([alice], room, wanted=2)
    tabs = list(by_worker.values())
    try:
        assert len(tabs) == 2 and tabs[0].worker != tabs[1].worker
        # 8 each: under the limit on either worker alone, over it together
        acks = [tabs[i % 2].send(room, f"tab {i % 2} #{i}") for i in range(16)]
        assert [a["ok"] for a in acks] == [True] * USER_MESSAGES + [False] * 6
        for tab_index in (0, 1):
            refused = [a for i, a in enumerate(acks) if i % 2 == tab_index and not a["ok"]]
            assert refused, f"the socket on the {tab_index + 1}. worker was never refused"
            assert all(a["error"] == "rate_limited" for a in refused)
            # the next one fits once one refill (60 s / 10) has come
            assert all(0 < a["retry_after"] <= 6 for a in refused)
        assert len(alice.all_messages(room)) == USER_MESSAGES
    finally:
        for tab in tabs:
            tab.close()


def test_signups_from_one_address_meet_the_apps_limit_then_nginxs(limited):
    responses = signup_burst(limited.url, "127.0.0.2", SIGNUPS.count + 5)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [303] * SIGNUPS.count + [429] * 5
    for refused in (r for r in responses if r.status_code == 429):
        # the app's own answer: the form again, the wait in words and in Retry-After
        assert is_app_page(refused)
        assert "Too many requests. Try again in" in refused.text
        assert int(refused.headers["Retry-After"]) > 0

    burst = post_burst(limited.url, "127.0.0.2", 100)
    assert {r.status_code for r in burst} == {429}
    by_nginx = [r for r in burst if NGINX_PAGE in r.text]
    by_app = [r for r in burst if is_app_page(r)]
    assert len(by_nginx) + len(by_app) == len(burst)
    # nginx's burst allowance (40) is mostly spent: most of these never reach a worker
    assert len(by_nginx) >= 50


def test_rate_limits_off_accepts_a_burst_of_signups_the_default_refuses(limited, unlimited):
    count = SIGNUPS.count + 5
    refused = signup_burst(limited.url, "127.0.0.3", count)
    assert sum(r.status_code == 429 for r in refused) == 5
    accepted = signup_burst(unlimited.url, "127.0.0.3", count)
    assert [r.status_code for r in accepted] == [303] * count
    # and nginx has no limit either: a burst of bad POSTs all reach the app (400: no form token)
    http = session_from("127.0.0.3")
    with ThreadPoolExecutor(max_workers=20) as pool:
        burst = list(
            pool.map(
                lambda _: http.post(unlimited.url + "/criar_conta_db", data={}, timeout=10),
                range(100),
            )
        )
    assert {r.status_code for r in burst} == {400}


def test_nginx_limits_open_socket_io_connections_per_address(limited):
    template = (ROOT / "nginx" / "flask-chat.conf.j2").read_text()
    allowed = int(re.search(r"limit_conn chat_sockets (\d+);", template).group(1))
    port = int(limited.url.rsplit(":", 1)[1])
    handshake = (
        "GET /socket.io/?EIO=4&transport=websocket&affinity={key} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    def open_websocket(key: str, address: str) -> tuple[socket.socket, str]:
        """An Engine.IO WebSocket that stays open (it never sends the Socket.IO CONNECT)."""
        sock = socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=(address, 0)
        )
        sock.sendall(handshake.format(key=key).encode())
        status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
        return sock, status

    held = []
    try:
        for key in range(allowed):  # bounded: the limit, then one more
            sock, status = open_websocket(str(key), "127.0.0.4")
            held.append(sock)
            assert " 101 " in status, f"connection {key + 1}: {status}"
        sock, status = open_websocket("one-more", "127.0.0.4")
        held.append(sock)
        assert " 429 " in status
        # another address is not affected
        sock, status = open_websocket("elsewhere", "127.0.0.5")
        held.append(sock)
        assert " 101 " in status
    finally:
        for sock in held:
            sock.close()
