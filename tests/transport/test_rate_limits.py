"""Abuse limits through the Flask test client: forms answer 429 with the wait, in the user's
language; Socket.IO events are refused with `rate_limited` and nothing is stored."""

import logging

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Chat, Message, User


@pytest.fixture
def settings(settings):
    settings.limits.update(
        {
            "signup.address": "2/hour",
            "login.address": "3/hour",
            "create_room.user": "2/hour",
            "message.connection": "3/minute",
            "message.user": "5/minute",
            "join.connection": "2/minute",
            "leave.connection": "1/minute",
        }
    )
    return settings


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_signups_from_one_address_are_limited_before_anything_is_stored(app, accounts):
    client = app.test_client()
    assert accounts.signup(client, username="first").status_code == 303
    client = app.test_client()
    assert accounts.signup(client, username="second").status_code == 303
    client = app.test_client()
    refused = accounts.signup(client, username="third")
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert 'role="alert"' in page and "Too many requests. Try again in 30 minutes." in page
    assert 'value="third"' in page  # the form comes back filled in
    assert refused.headers["Retry-After"] == "1800"
    assert count(app, User) == 2
    # another address is not affected
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert accounts.signup(other, username="fourth").status_code == 303


def test_the_wait_is_said_in_the_users_language(app, accounts):
    for name in ("primeiro", "segundo"):
        assert accounts.signup(app.test_client(), username=name).status_code == 303
    client = app.test_client()
    client.set_cookie("lang", "pt_BR")
    refused = accounts.signup(client, username="terceiro")
    assert refused.status_code == 429
    assert "Muitas solicitações. Tente de novo em 30 minutos." in refused.get_data(as_text=True)


def test_login_posts_from_one_address_are_limited_whatever_their_outcome(app, accounts):
    accounts.signup(app.test_client())
    client = app.test_client()
    assert accounts.login(client, password="wrong password").status_code == 401
    assert accounts.login(client).status_code == 303
    assert accounts.login(app.test_client()).status_code == 303
    refused = accounts.login(app.test_client())
    assert refused.status_code == 429
    assert "Too many requests. Try again in 20 minutes." in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) == 1200


def test_room_creation_is_limited_per_user(app, accounts):
    alice = accounts.logged_in_client("alice")
    accounts.create_room(alice, "one")
    accounts.create_room(alice, "two")
    refused = alice.post(
        "/create_chat",
        data={"csrf_token": accounts.csrf(alice, "/dashboard"), "chat_name": "three"},
    )
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert 'id="chat_name-error"' in page and "Try again in 30 minutes." in page
    assert count(app, Chat) == 2
    # another user still can
    accounts.create_room(accounts.logged_in_client("bob"), "bobs")


def test_a_flood_of_messages_is_refused_with_retry_after_and_nothing_is_stored(
    app, accounts, socket_for
):
    alice = accounts.logged_in_client("alice")
    room = accounts.create_room(alice, "general")
    sio = socket_for(alice)
    assert sio.emit("join", {"room": room}, callback=True)["ok"]
    sio.get_received()
    acks = [
        sio.emit("message", {"room": room, "message": f"m{i}"}, callback=True) for i in range(5)
    ]
    assert [a["ok"] for a in acks] == [True, True, True, False, False]
    refused = acks[3]
    assert refused["error"] == "rate_limited"
    assert refused["detail"] == "Too many requests. Try again in 20 seconds."
    assert refused["retry_after"] == pytest.approx(20, abs=1)
    assert count(app, Message) == 3
    broadcasts = [e for e in sio.get_received() if e["name"] == "message"]
    assert len(broadcasts) == 3


def test_the_user_limit_spans_every_connection_of_the_user(app, accounts, socket_for):
    alice = accounts.logged_in_client("alice")
    room = accounts.create_room(alice, "general")
    tabs = [socket_for(alice), socket_for(alice)]
    for tab in tabs:
        assert tab.emit("join", {"room": room}, callback=True)["ok"]
    acks = [
        tabs[i % 2].emit("message", {"room": room, "message": f"m{i}"}, callback=True)
        for i in range(6)
    ]
    # 3 per connection would allow all 6: the user's 5 is what refuses the sixth
    assert [a["ok"] for a in acks] == [True] * 5 + [False]
    assert acks[5]["error"] == "rate_limited"
    assert count(app, Message) == 5


def test_joins_are_limited_per_connection(app, accounts, socket_for):
    alice = accounts.logged_in_client("alice")
    room = accounts.create_room(alice, "general")
    sio = socket_for(alice)
    acks = [sio.emit("join", {"room": room}, callback=True) for _ in range(3)]
    assert [a["ok"] for a in acks] == [True, True, False]
    assert acks[2]["error"] == "rate_limited" and acks[2]["retry_after"] > 0
    # a new connection (a reload) has its own allowance
    assert socket_for(alice).emit("join", {"room": room}, callback=True)["ok"]


def test_a_refused_join_joins_nothing(app, accounts, socket_for):
    alice = accounts.logged_in_client("alice")
    rooms = [accounts.create_room(alice, name) for name in ("one", "two")]
    third = accounts.create_room(accounts.logged_in_client("bob"), "three")
    sio = socket_for(alice)
    # a payload that is not an object is refused before it counts
    for _ in range(3):
        assert sio.emit("join", "not an object", callback=True)["error"] == "bad_request"
    assert all(sio.emit("join", {"room": r}, callback=True)["ok"] for r in rooms)
    assert sio.emit("join", {"room": third}, callback=True)["error"] == "rate_limited"
    posted = sio.emit("message", {"room": third, "message": "hi"}, callback=True)
    assert posted["error"] == "not_member"


def test_leaves_are_limited_per_connection(app, accounts, socket_for):
    alice = accounts.logged_in_client("alice")
    room = accounts.create_room(alice, "general")
    sio = socket_for(alice)
    assert sio.emit("join", {"room": room}, callback=True)["ok"]
    assert sio.emit("leave", {"room": room}, callback=True)["ok"]
    refused = sio.emit("leave", {"room": room}, callback=True)
    assert refused["error"] == "rate_limited" and refused["retry_after"] > 0


def test_rate_limits_off_turns_every_limit_off_and_says_so(settings, request, caplog):
    settings.rate_limits = False
    with caplog.at_level(logging.WARNING, logger="app.factory"):
        app = request.getfixturevalue("app")
    assert any("RATE_LIMITS=off" in r.getMessage() for r in caplog.records)
    accounts, socket_for = (
        request.getfixturevalue("accounts"),
        request.getfixturevalue("socket_for"),
    )
    for i in range(4):
        assert accounts.signup(app.test_client(), username=f"user{i}").status_code == 303
    alice = accounts.logged_in_client("alice")
    rooms = [accounts.create_room(alice, f"room{i}") for i in range(4)]
    sio = socket_for(alice)
    assert all(sio.emit("join", {"room": r}, callback=True)["ok"] for r in rooms)
    acks = [
        sio.emit("message", {"room": rooms[0], "message": f"m{i}"}, callback=True) for i in range(8)
    ]
    assert all(a["ok"] for a in acks)
