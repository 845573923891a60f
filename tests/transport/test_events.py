"""Every line of docs/protocol.md, through the Flask-SocketIO test client."""

import pytest
from sqlalchemy import func, select

from app.extensions import db, socketio
from app.models import Message


def stored(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Message))


def events(sio, name):
    return [e["args"] for e in sio.get_received() if e["name"] == name]


def payload(args):
    # the test client gives the single argument of `message` bare, other events as a list
    return args if isinstance(args, dict) else args[0]


@pytest.fixture
def settings(settings):
    # every notice here, however close together (their coalescing: test_notices.py)
    settings.notice_interval = 0
    return settings


@pytest.fixture
def room(accounts):
    alice = accounts.logged_in_client("alice")
    return alice, accounts.create_room(alice, "general")


@pytest.fixture
def pair(room, accounts, socket_for):
    """alice and bob, both connected and in the room."""
    alice_http, room_id = room
    bob_http = accounts.logged_in_client("bob")
    alice, bob = socket_for(alice_http), socket_for(bob_http)
    assert alice.emit("join", {"room": room_id}, callback=True)["ok"]
    assert bob.emit("join", {"room": room_id}, callback=True)["ok"]
    alice.get_received(), bob.get_received()
    return alice, bob, room_id


# connect


def test_logged_out_clients_are_refused(app, client):
    sio = socketio.test_client(app, flask_test_client=client)
    assert not sio.is_connected()


def test_logged_in_clients_connect(room, socket_for):
    assert socket_for(room[0]).is_connected()


# join


def test_join_acks_with_the_room_worker_and_last_messages_oldest_first(app, room, socket_for):
    alice_http, room_id = room
    # more than HISTORY_ON_JOIN messages, from two tabs: one alone would hit message.connection
    tabs = [socket_for(alice_http), socket_for(alice_http)]
    for tab in tabs:
        tab.emit("join", {"room": room_id}, callback=True)
    for i in range(1, 56):
        ack = tabs[i % 2].emit("message", {"room": room_id, "message": f"m{i}"}, callback=True)
        assert ack["ok"], ack
    again = socket_for(alice_http)
    ack = again.emit("join", {"room": str(room_id)}, callback=True)  # a numeric string works too
    assert ack["ok"] is True
    assert ack["room"] == room_id
    assert ack["worker"] == "test-worker"
    assert [m["message"] for m in ack["messages"]] == [f"m{i}" for i in range(6, 56)]
    assert ack["more"] is True


def test_join_with_since_returns_every_message_after_it(room, socket_for):
    alice_http, room_id = room
    alice = socket_for(alice_http)
    alice.emit("join", {"room": room_id}, callback=True)
    for i in range(1, 8):
        alice.emit("message", {"room": room_id, "message": f"m{i}"}, callback=True)
    ack = socket_for(alice_http).emit("join", {"room": room_id, "since": 4}, callback=True)
    assert [m["seq"] for m in ack["messages"]] == [5, 6, 7]
    assert ack["more"] is False


def test_join_with_since_is_capped_and_says_more(app, room, socket_for):
    alice_http, room_id = room
    app.config["CHAT"].since_cap = 3
    alice = socket_for(alice_http)
    alice.emit("join", {"room": room_id}, callback=True)
    for i in range(1, 8):
        alice.emit("message", {"room": room_id, "message": f"m{i}"}, callback=True)
    ack = socket_for(alice_http).emit("join", {"room": room_id, "since": 0}, callback=True)
    assert [m["seq"] for m in ack["messages"]] == [1, 2, 3]
    assert ack["more"] is True


def test_others_get_a_join_notice_once(room, accounts, socket_for):
    alice_http, room_id = room
    alice = socket_for(alice_http)
    alice.emit("join", {"room": room_id}, callback=True)
    bob = socket_for(accounts.logged_in_client("bob"))
    bob.emit("join", {"room": room_id}, callback=True)
    bob.emit("join", {"room": room_id}, callback=True)
    notices = [payload(a) for a in events(alice, "notice")]
    assert notices == [{"room": room_id, "kind": "join", "username": "bob"}]
    assert events(bob, "notice") == []


@pytest.mark.parametrize(
    "data",
    [
        None,
        "general",
        [1],
        {},
        {"room": None},
        {"room": "abc"},
        {"room": -1},
        {"room": 1.5},
        {"room": True},
        {"room": 1, "since": -1},
        {"room": 1, "since": "3"},
        {"room": 1, "since": 2.5},
        {"room": "²"},
        {"room": 2**40},
        {"room": 1, "since": 2**40},
    ],
)
def test_malformed_join_is_a_bad_request(room, socket_for, data):
    ack = socket_for(room[0]).emit("join", data, callback=True)
    assert ack["ok"] is False
    assert ack["error"] == "bad_request"
    assert ack["detail"]


def test_join_of_a_missing_room_is_no_such_room(room, socket_for):
    ack = socket_for(room[0]).emit("join", {"room": 999}, callback=True)
    assert ack == {"ok": False, "error": "no_such_room", "detail": "There is no room 999."}


# leave


def test_leave_acks_and_tells_the_others(pair):
    alice, bob, room_id = pair
    assert bob.emit("leave", {"room": room_id}, callback=True) == {"ok": True}
    assert [payload(a) for a in events(alice, "notice")] == [
        {"room": room_id, "kind": "leave", "username": "bob"}
    ]
    ack = bob.emit("message", {"room": room_id, "message": "still here?"}, callback=True)
    assert ack["error"] == "not_member"


def test_leaving_a_room_one_is_not_in_is_harmless(room, socket_for):
    assert socket_for(room[0]).emit("leave", {"room": room[1]}, callback=True) == {"ok": True}


def test_malformed_leave_is_a_bad_request(room, socket_for):
    assert socket_for(room[0]).emit("leave", {"room": "x"}, callback=True)["error"] == "bad_request"


def test_disconnecting_tells_the_room(pair):
    alice, bob, room_id = pair
    bob.disconnect()
    assert [payload(a) for a in events(alice, "notice")] == [
        {"room": room_id, "kind": "leave", "username": "bob"}
    ]


# message


def test_a_message_is_stored_and_broadcast_to_everyone_once(app, pair):
    alice, bob, room_id = pair
    ack = alice.emit(
        "message", {"room": room_id, "message": "hello bob", "client_id": "c1"}, callback=True
    )
    assert ack["ok"] is True and ack["seq"] == 1 and isinstance(ack["id"], int)
    for sio in (alice, bob):
        received = [payload(a) for a in events(sio, "message")]
        assert len(received) == 1
        message = received[0]
        assert message["id"] == ack["id"] and message["seq"] == 1
        assert message["room"] == room_id and message["username"] == "alice"
        assert message["message"] == "hello bob" and message["client_id"] == "c1"
        assert message["created_at"].endswith("Z")
    assert stored(app) == 1


def test_a_retry_with_the_same_client_id_is_stored_and_broadcast_once(app, pair):
    alice, bob, room_id = pair
    first = alice.emit(
        "message", {"room": room_id, "message": "hi", "client_id": "r1"}, callback=True
    )
    retry = alice.emit(
        "message", {"room": room_id, "message": "hi", "client_id": "r1"}, callback=True
    )
    assert retry == first
    assert len(events(bob, "message")) == 1
    assert stored(app) == 1


def test_only_members_may_post(app, room, socket_for):
    ack = socket_for(room[0]).emit("message", {"room": room[1], "message": "hi"}, callback=True)
    assert ack["ok"] is False and ack["error"] == "not_member" and ack["detail"]
    assert stored(app) == 0


def test_posting_to_a_missing_room_is_no_such_room(app, room, socket_for):
    ack = socket_for(room[0]).emit("message", {"room": 999, "message": "hi"}, callback=True)
    assert ack["error"] == "no_such_room"
    assert stored(app) == 0


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"message": ""}, "empty"),
        ({"message": "  \n "}, "empty"),
        ({"message": "x" * 4001}, "too_long"),
        ({}, "bad_request"),
        ({"message": 5}, "bad_request"),
        ({"message": ["hi"]}, "bad_request"),
        ({"message": "hi", "client_id": {"a": 1}}, "bad_request"),
        ({"message": "hi", "client_id": "no spaces allowed"}, "bad_request"),
    ],
)
def test_refused_messages_are_acked_with_the_reason_and_store_nothing(app, pair, data, code):
    alice, bob, room_id = pair
    ack = alice.emit("message", {"room": room_id, **data}, callback=True)
    assert ack["ok"] is False and ack["error"] == code and ack["detail"]
    assert events(bob, "message") == []
    assert stored(app) == 0


def test_a_non_object_message_payload_is_a_bad_request(app, pair):
    alice, _, _ = pair
    assert alice.emit("message", "hello", callback=True)["error"] == "bad_request"
    assert stored(app) == 0


def test_after_logout_the_socket_is_disconnected_and_gets_no_more_broadcasts(
    app, accounts, pair, room
):
    alice, bob, room_id = pair
    alice_http = room[0]
    alice_http.post("/logout", data={"csrf_token": accounts.csrf(alice_http, "/dashboard")})
    assert not alice.is_connected()
    assert bob.emit("message", {"room": room_id, "message": "still there?"}, callback=True)["ok"]
    # what the server sent alice's connection (the test client keeps it after the disconnect)
    assert [p for p in alice.queue if p["name"] == "message"] == []
    # the others in the room hear that alice left
    assert {"room": room_id, "kind": "leave", "username": "alice"} in [
        payload(args) for args in events(bob, "notice")
    ]


def test_a_socket_whose_session_vanished_unnoticed_is_closed_by_the_next_recheck(app, pair):
    # as if the disconnect was lost (Redis down): the user is resolved once per connection,
    # so the worker's periodic re-check of its sessions (every SESSION_CHECK seconds at
    # most; the sweeper calls it) is what closes the socket
    from app.models import LoginSession
    from app.realtime.connections import registry

    alice, bob, room_id = pair
    with app.app_context():
        db.session.execute(LoginSession.__table__.delete())
        db.session.commit()
        registry.check_sessions()
    assert not alice.is_connected() and not bob.is_connected()
    assert stored(app) == 0


def test_events_after_the_session_deadline_are_refused_as_unauthorized(app, pair):
    # between the absolute deadline and the sweep that closes the socket (a second at most)
    from app.realtime.connections import registry

    alice, _, room_id = pair
    for conn in registry.local.values():
        conn.deadline = 0
    ack = alice.emit("message", {"room": room_id, "message": "too late"}, callback=True)
    assert ack["ok"] is False and ack["error"] == "unauthorized" and ack["detail"]
    assert stored(app) == 0
