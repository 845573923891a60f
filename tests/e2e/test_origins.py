"""The Origin rule on a worker reached directly (`flask-chat serve`, FORWARDED_HOPS=0).

The same origin always works, `ALLOWED_ORIGINS` adds to it, and X-Forwarded-* headers a
client makes up do not count: nothing in front of this process is trusted to set them.
"""

from __future__ import annotations

import uuid

import pytest
import requests
import socketio

from livechat import ChatUser, start_serve

LISTED = "https://chat.example.com"


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    server, base = start_serve(
        tmp_path_factory.mktemp("origins"), FORWARDED_HOPS="0", ALLOWED_ORIGINS=LISTED
    )
    try:
        yield base
    finally:
        server.stop()


@pytest.fixture
def alice(direct):
    return ChatUser(direct, f"origin-{uuid.uuid4().hex[:8]}").signup()


def polling_handshake(user: ChatUser, origin: str, **headers) -> requests.Response:
    return user.http.get(
        user.base_url + "/socket.io/",
        params={"EIO": "4", "transport": "polling"},
        headers={"Origin": origin, **headers},
        timeout=5,
    )


FORGED = [
    {"X-Forwarded-Host": "evil.invalid"},
    {"X-Forwarded-Host": "evil.invalid", "X-Forwarded-Proto": "http"},
    {"X-Forwarded-Host": "evil.invalid", "X-Forwarded-Proto": "https"},
]


@pytest.mark.parametrize("server", ["served", "direct"])
@pytest.mark.parametrize("forged", FORGED)
def test_a_foreign_origin_with_forged_forwarded_headers_is_refused(request, server, forged):
    """`served`: no ALLOWED_ORIGINS (Engine.IO's own same-origin rule used to trust these
    headers); `direct`: with one listed origin."""
    user = ChatUser(request.getfixturevalue(server), f"forge-{uuid.uuid4().hex[:8]}").signup()
    origin = f"{forged.get('X-Forwarded-Proto', 'http')}://evil.invalid"
    response = polling_handshake(user, origin, **forged)
    assert response.status_code == 400
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_listed_origin_and_the_site_itself_connect(alice):
    listed = polling_handshake(alice, LISTED)
    assert listed.status_code == 200
    assert listed.headers["Access-Control-Allow-Origin"] == LISTED
    # listing an origin does not take the site's own away (ALLOWED_ORIGINS adds)
    room = alice.create_room(f"origins-{uuid.uuid4().hex[:6]}")
    for origin in (alice.base_url, LISTED):
        sock = alice.socket(origin=origin, transports=["polling"])
        try:
            assert sock.join(room)["ok"]
        finally:
            sock.close()
    with pytest.raises(socketio.exceptions.ConnectionError):
        alice.socket(origin="http://evil.invalid", transports=["polling"])
