"""Sessions that really end, and connection limits, against the real `flask-chat serve`.

Each module-scoped server here has its own settings: small connection limits and a short
connect timeout, or a short absolute session lifetime.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests

from livechat import ChatUser, connect_refusal, start_serve, wait_until

PASSWORD = "correct horse battery"


def serve_with(tmp_path_factory, name: str, **env: str):
    return start_serve(tmp_path_factory.mktemp(name), **env)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """`serve` with 3 sockets per user, 5 per address, 2 s to complete the CONNECT."""
    server, base = serve_with(
        tmp_path_factory,
        "limited",
        SOCKETS_PER_USER="3",
        SOCKETS_PER_ADDRESS="5",
        SOCKET_CONNECT_TIMEOUT="2s",
        RATE_LIMITS="on",
    )
    yield base
    server.stop()


@pytest.fixture(scope="module")
def idle_short(tmp_path_factory):
    """`serve` whose login sessions end after 3 s without use."""
    server, base = serve_with(tmp_path_factory, "idle", SESSION_IDLE_TIMEOUT="3s")
    yield base
    server.stop()


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory):
    """`serve` whose login sessions end 6 s after the login."""
    server, base = serve_with(tmp_path_factory, "short", SESSION_MAX_AGE="6s")
    yield base
    server.stop()


def user(base: str, prefix: str = "u") -> ChatUser:
    return ChatUser(base, f"{prefix}-{uuid.uuid4().hex[:8]}", PASSWORD).signup()


def post_form(person: ChatUser, path: str, page: str = "/account", **data) -> requests.Response:
    return person.http.post(
        person.base_url + path,
        data={"csrf_token": person._csrf(page), **data},
        allow_redirects=False,
        timeout=10,
    )


def second_browser(person: ChatUser) -> ChatUser:
    """The same account logged in from another browser (its own login session)."""
    return ChatUser(person.base_url, person.username, person.password).login()


def refusal(person: ChatUser, cookie: str | None = None) -> dict | None:
    """Try to open a socket; the connect_error payload when refused, None when connected."""
    return connect_refusal(person.base_url, person.cookie_header() if cookie is None else cookie)


# -- a socket's life ends with its session ----------------------------------------------------


def test_logout_closes_the_socket_and_nothing_reaches_it_after(limited):
    alice, bob = user(limited, "alice"), user(limited, "bob")
    room = alice.create_room(f"r-{uuid.uuid4().hex[:8]}")
    old_cookie = alice.cookie_header()
    a, b = alice.socket(), bob.socket()
    try:
        a.join(room)
        b.join(room)
        started = time.monotonic()
        assert post_form(alice, "/logout", "/dashboard").status_code == 303
        a.wait_closed_by_server(1.0)
        # a DISCONNECT packet from the server ("io server disconnect" in the browser client)
        assert a.disconnect_reasons == [a.client.reason.SERVER_DISCONNECT]
        assert time.monotonic() - started < 1.5
        assert b.send(room, "after the logout")["ok"]
        b.wait_for_seq(room, 1)
        assert a.received == []
        # the old cookie opens nothing any more
        assert refusal(alice, old_cookie) == {"message": "unauthorized"}
    finally:
        a.close()
        b.close()


def test_a_password_change_closes_the_other_sessions_sockets_only(limited):
    here = user(limited, "carol")
    there = second_browser(here)
    bob = user(limited, "bob")
    room = bob.create_room(f"r-{uuid.uuid4().hex[:8]}")
    mine, theirs, b = here.socket(), there.socket(), bob.socket()
    try:
        for sock in (mine, theirs, b):
            sock.join(room)
        response = post_form(
            here,
            "/account/password",
            current_password=PASSWORD,
            new_password="another fine secret",
            confirm_password="another fine secret",
        )
        assert response.status_code == 303
        theirs.wait_closed_by_server(1.0)
        assert b.send(room, "still here?")["ok"]
        mine.wait_for_seq(room, 1)  # this session's socket stays and receives
        assert mine.client.connected
        assert theirs.received == []
        assert refusal(there) == {"message": "unauthorized"}
    finally:
        for sock in (mine, theirs, b):
            sock.close()


def test_log_out_everywhere_closes_every_socket(limited):
    here = user(limited, "dave")
    there = second_browser(here)
    sockets = [here.socket(), there.socket()]
    try:
        assert post_form(here, "/account/logout-everywhere").status_code == 303
        for sock in sockets:
            sock.wait_closed_by_server(1.0)
        assert refusal(here) == {"message": "unauthorized"}
        assert refusal(there) == {"message": "unauthorized"}
    finally:
        for sock in sockets:
            sock.close()


def test_a_socket_is_closed_when_its_session_reaches_its_lifetime(short_lived):
    alice = user(short_lived, "alice")
    logged_in = time.monotonic()  # just after the login: the deadline is at most 6 s from here
    room = alice.create_room(f"r-{uuid.uuid4().hex[:8]}")
    a = alice.socket()
    try:
        a.join(room)
        a.wait_closed_by_server(9.0)
        closed = time.monotonic() - logged_in
        # within about a second of the deadline
        assert 5.0 < closed < 7.5, closed
        bob = user(short_lived, "bob")  # a fresh session, to post after alice's ended
        b = bob.socket()
        try:
            b.join(room)
            assert b.send(room, "after the end")["ok"]
            b.wait_for_seq(room, 1)
        finally:
            b.close()
        assert a.received == []
        assert refusal(alice) == {"message": "unauthorized"}
        # the pages say so too
        page = alice.http.get(short_lived + "/dashboard", allow_redirects=False, timeout=10)
        assert page.status_code == 302
    finally:
        a.close()


def test_an_open_socket_keeps_its_session_from_idling_out(idle_short):
    alice = user(idle_short, "ivy")
    room = alice.create_room(f"r-{uuid.uuid4().hex[:8]}")
    a = alice.socket()
    try:
        a.join(room)
        # twice the idle timeout with no request, only the open socket
        with pytest.raises(TimeoutError):
            a.wait_until(lambda: a.disconnects > 0, 6.0, "a disconnect that must not come")
        page = alice.http.get(idle_short + "/dashboard", allow_redirects=False, timeout=10)
        assert page.status_code == 200
    finally:
        a.close()
    # without the socket (and without requests) the session ends after the idle timeout
    wait_until(
        lambda: (
            alice.http.get(idle_short + "/dashboard", allow_redirects=False, timeout=10).status_code
            == 302
        ),
        8,
        "the idle session to end",
        interval=4,
    )


# -- connection limits ------------------------------------------------------------------------


def test_sockets_per_user_are_limited_with_a_readable_refusal(limited):
    alice = user(limited, "erin")
    open_ = [alice.socket() for _ in range(3)]
    try:
        refused = refusal(alice)
        assert refused["message"] == "too_many_connections"
        assert refused["data"]["error"] == "too_many_connections"
        assert refused["data"]["scope"] == "user" and refused["data"]["limit"] == 3
        assert "3 connections" in refused["data"]["detail"]
        # closing one frees a slot
        open_.pop().close()
        wait_until(lambda: refusal(alice) is None, 5, "a freed slot")
    finally:
        for sock in open_:
            sock.close()


def test_sockets_per_address_are_limited(limited):
    people = [user(limited, "f") for _ in range(3)]
    open_ = [people[i % 3].socket() for i in range(5)]
    try:
        refused = refusal(people[0])
        assert refused["message"] == "too_many_connections"
        assert refused["data"]["scope"] == "address" and refused["data"]["limit"] == 5
    finally:
        for sock in open_:
            sock.close()


def test_the_refusal_is_in_the_users_language(limited):
    alice = user(limited, "gil")
    open_ = [alice.socket() for _ in range(3)]
    try:
        refused = refusal(alice, alice.cookie_header() + "; lang=pt_BR")
        assert "conexões abertas" in refused["data"]["detail"]
    finally:
        for sock in open_:
            sock.close()


def engineio_handshake(base: str, cookie: str = "") -> str:
    response = requests.get(
        base + "/socket.io/",
        params={"EIO": "4", "transport": "polling"},
        headers={"Cookie": cookie} if cookie else {},
        timeout=5,
    )
    response.raise_for_status()
    assert response.text.startswith("0{"), response.text
    return json.loads(response.text[1:])["sid"]


def session_open(base: str, sid: str) -> bool:
    """Whether the Engine.IO session still exists (a poll on a closed one is a 400)."""
    response = requests.get(
        base + "/socket.io/",
        params={"EIO": "4", "transport": "polling", "sid": sid},
        timeout=40,
    )
    return response.status_code == 200 and not response.text.startswith("1")


@pytest.mark.parametrize("send_connect", [False, True])
def test_an_engineio_session_without_a_socketio_connect_is_closed(limited, send_connect):
    sid = engineio_handshake(limited)
    if send_connect:
        # a CONNECT without a login: refused, and the session must not linger either
        requests.post(
            limited + "/socket.io/",
            params={"EIO": "4", "transport": "polling", "sid": sid},
            data="40",
            timeout=5,
        )
    started = time.monotonic()
    outcome: dict = {}

    def poll_until_closed():
        while time.monotonic() - started < 10:
            if not session_open(limited, sid):
                outcome["closed_after"] = time.monotonic() - started
                return

    worker = threading.Thread(target=poll_until_closed, daemon=True)
    worker.start()
    worker.join(12)
    assert "closed_after" in outcome, "the Engine.IO session stayed open"
    assert outcome["closed_after"] < 5  # SOCKET_CONNECT_TIMEOUT=2s, swept every second
