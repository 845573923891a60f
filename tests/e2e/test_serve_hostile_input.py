"""Hostile text against the real `flask-chat serve` (SQLite, gevent): the JSON of a
Socket.IO event carries "\\u0000" and a lone "\\ud800"; forms carry NUL."""

import uuid

import requests
from socketio import packet

from livechat import CSRF_RE, ChatUser


def test_nul_and_a_lone_surrogate_in_a_socket_event_are_a_bad_request(served):
    suffix = uuid.uuid4().hex[:8]
    alice = ChatUser(served, f"alice-{suffix}").signup()
    bob = ChatUser(served, f"bob-{suffix}").signup()
    room = alice.create_room(f"hostile-{suffix}")
    a, b = alice.socket(), bob.socket()
    try:
        a.join(room)
        b.join(room)
        for text in ("nul \u0000 here", "\ud800", "lone \ud800 high"):
            data = {"room": room, "message": text, "client_id": uuid.uuid4().hex}
            # what goes over the wire: JSON with the escapes, as an attacker would send it
            encoded = packet.Packet(packet.EVENT, data=["message", data]).encode()
            assert r"\u0000" in encoded or r"\ud800" in encoded
            ack = a.call("message", data)
            assert ack["ok"] is False and ack["error"] == "bad_request", ack
        invisible = a.call("message", {"room": room, "message": "\u200b\u2060\ufeff"})
        assert invisible["error"] == "empty"
        # the connection still works, and nothing of the refused messages was stored
        assert a.send(room, "still fine")["ok"]
        b.wait_for_seq(room, 1)
        assert [m["message"] for m in b.received] == ["still fine"]
        assert [m["message"] for m in alice.all_messages(room)] == ["still fine"]
    finally:
        a.close()
        b.close()


def form(session: requests.Session, base: str, path: str, page: str, data: dict):
    token = CSRF_RE.search(session.get(base + page, timeout=10).text).group(1)
    return session.post(
        base + path, data={"csrf_token": token, **data}, allow_redirects=False, timeout=10
    )


def test_nul_in_the_forms_is_a_400_not_a_500(served):
    suffix = uuid.uuid4().hex[:8]
    signup = form(
        requests.Session(),
        served,
        "/criar_conta_db",
        "/criar_conta",
        {
            "username": f"nul\x00{suffix}",
            "password": "correct horse battery",
            "email": "nul@example.com",
            "idade": "30",
        },
    )
    assert signup.status_code == 400 and 'id="username-error"' in signup.text
    login = form(
        requests.Session(), served, "/login", "/", {"username": "a\x00", "password": "b\x00"}
    )
    assert login.status_code == 400 and "control characters" in login.text
    alice = ChatUser(served, f"alice-{suffix}").signup()
    room = form(alice.http, served, "/create_chat", "/dashboard", {"chat_name": "a\x00b"})
    assert room.status_code == 400 and 'id="chat_name-error"' in room.text
