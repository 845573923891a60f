"""Join/leave notices: only when they are news, and one per user and room per interval."""

import pytest


@pytest.fixture
def settings(settings):
    settings.notice_interval = 0  # the presence rule alone; coalescing has its own tests
    return settings


@pytest.fixture
def room(accounts, socket_for):
    """bob watches a room alice is about to enter."""
    alice_http = accounts.logged_in_client("alice")
    room_id = accounts.create_room(alice_http, "general")
    bob = socket_for(accounts.logged_in_client("bob"))
    assert bob.emit("join", {"room": room_id}, callback=True)["ok"]
    return alice_http, bob, room_id


def notices(sio):
    return [
        (e["args"][0]["kind"], e["args"][0]["username"])
        for e in sio.get_received()
        if e["name"] == "notice"
    ]


def test_a_second_connection_of_a_user_in_the_room_is_not_news(room, socket_for):
    alice_http, bob, room_id = room
    first, second = socket_for(alice_http), socket_for(alice_http)
    assert first.emit("join", {"room": room_id}, callback=True)["ok"]
    assert second.emit("join", {"room": room_id}, callback=True)["ok"]
    assert notices(bob) == [("join", "alice")]
    # leaving while the other connection stays: not news either
    assert second.emit("leave", {"room": room_id}, callback=True) == {"ok": True}
    second.disconnect()
    assert notices(bob) == []
    # the last one going is
    first.disconnect()
    assert notices(bob) == [("leave", "alice")]


def test_a_leave_then_a_join_are_both_news(room, socket_for):
    alice_http, bob, room_id = room
    alice = socket_for(alice_http)
    for _ in range(2):
        assert alice.emit("join", {"room": room_id}, callback=True)["ok"]
        assert alice.emit("leave", {"room": room_id}, callback=True)["ok"]
    assert notices(bob) == [("join", "alice"), ("leave", "alice")] * 2


class TestCoalescing:
    @pytest.fixture
    def settings(self, settings):
        settings.notice_interval = 60
        return settings

    def test_one_notice_per_user_and_room_per_interval(self, room, accounts, socket_for):
        alice_http, bob, room_id = room
        sockets = [socket_for(alice_http) for _ in range(4)]
        for _ in range(5):
            for sio in sockets:
                assert sio.emit("join", {"room": room_id}, callback=True)["ok"]
            for sio in sockets:
                assert sio.emit("leave", {"room": room_id}, callback=True)["ok"]
        assert notices(bob) == [("join", "alice")]
        # another user's notice is not held back by alice's
        carol = socket_for(accounts.logged_in_client("carol"))
        assert carol.emit("join", {"room": room_id}, callback=True)["ok"]
        assert notices(bob) == [("join", "carol")]
