"""The real `flask-chat serve` process, driven over the network by real Socket.IO clients."""

import uuid

import pytest
import requests
import socketio

from livechat import ChatUser


@pytest.fixture
def alice_and_bob(served):
    suffix = uuid.uuid4().hex[:8]
    alice = ChatUser(served, f"alice-{suffix}").signup()
    bob = ChatUser(served, f"bob-{suffix}").signup()
    room = alice.create_room(f"general-{suffix}")
    return alice, bob, room


def test_two_users_chat_and_each_message_arrives_exactly_once(alice_and_bob):
    alice, bob, room = alice_and_bob
    a, b = alice.socket(), bob.socket()
    try:
        assert a.client.transport() == "websocket"
        a.join(room)
        b.join(room)
        ack = a.send(room, "hello bob")
        assert ack["ok"] and ack["seq"] == 1
        # a second message as a marker: once it is in, anything duplicated before it is too
        b.send(room, "hi alice")
        b.wait_for_seq(room, 2)
        a.wait_for_seq(room, 2)
        assert b.seqs(room) == [1, 2]
        assert a.seqs(room) == [1, 2]
        assert [m["message"] for m in b.received] == ["hello bob", "hi alice"]
        assert b.received[0]["username"] == alice.username
    finally:
        a.close()
        b.close()


def test_a_client_that_reconnects_with_since_gets_exactly_what_it_missed(alice_and_bob):
    alice, bob, room = alice_and_bob
    a, b = alice.socket(), bob.socket()
    try:
        a.join(room)
        b.join(room)
        a.send(room, "before the cut")
        b.wait_for_seq(room, 1)
        last_seen = max(b.seqs(room))
        b.close()
        for i in range(5):
            assert a.send(room, f"missed {i}")["ok"]
        b = bob.socket()
        ack = b.join(room, since=last_seen)
        assert [m["seq"] for m in ack["messages"]] == [2, 3, 4, 5, 6]
        assert [m["message"] for m in ack["messages"]] == [f"missed {i}" for i in range(5)]
    finally:
        a.close()
        b.close()


def test_a_retried_message_is_stored_once(alice_and_bob):
    alice, _, room = alice_and_bob
    a = alice.socket()
    try:
        a.join(room)
        client_id = uuid.uuid4().hex
        first = a.send(room, "only once", client_id=client_id)
        # the same client_id again, as after a lost ack, over a brand new connection
        a.close()
        a = alice.socket()
        a.join(room)
        second = a.send(room, "only once", client_id=client_id)
        assert second == first
        stored = alice.all_messages(room)
        assert [m["message"] for m in stored] == ["only once"]
    finally:
        a.close()


def test_long_polling_works_too(alice_and_bob):
    alice, bob, room = alice_and_bob
    a, b = alice.socket(transports=["polling"]), bob.socket(transports=["polling"])
    try:
        assert a.client.transport() == "polling"
        a.join(room)
        b.join(room)
        a.send(room, "over polling")
        b.wait_for_seq(room, 1)
        assert b.received[0]["message"] == "over polling"
    finally:
        a.close()
        b.close()


def test_clients_without_a_login_are_refused(served):
    anonymous = ChatUser(served, "nobody")
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.socket()


def test_a_foreign_origin_is_refused(alice_and_bob):
    alice, _, _ = alice_and_bob
    with pytest.raises(socketio.exceptions.ConnectionError):
        alice.socket(origin="http://evil.invalid")
    with pytest.raises(socketio.exceptions.ConnectionError):
        alice.socket(origin="http://evil.invalid", transports=["polling"])


def test_the_pages_and_the_browser_client_are_served(alice_and_bob):
    alice, _, room = alice_and_bob
    page = alice.http.get(f"{alice.base_url}/chat/{room}", timeout=10)
    assert page.status_code == 200 and "general" in page.text
    script = requests.get(f"{alice.base_url}/static/vendor/socket.io.min.js", timeout=10)
    assert script.status_code == 200 and "io" in script.text
