"""Join/leave notices: only when they are news, and one per user and room per interval."""

import time

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


def wait_for_notice(sio, wanted, timeout=10.0):
    """Every notice received until `wanted` is among them (bounded wait)."""
    got, deadline = [], time.monotonic() + timeout
    while wanted not in got:
        assert time.monotonic() < deadline, f"no {wanted} notice in {timeout}s: {got}"
        got += notices(sio)
        time.sleep(0.05)
    return got


class TestCoalescing:
    INTERVAL = 2

    @pytest.fixture
    def settings(self, settings):
        settings.notice_interval = self.INTERVAL
        return settings

    def test_a_storm_makes_one_notice_then_one_that_tells_how_it_ended(
        self, room, accounts, socket_for
    ):
        alice_http, bob, room_id = room
        sockets = [socket_for(alice_http) for _ in range(4)]
        started = time.monotonic()
        for _ in range(5):
            for sio in sockets:
                assert sio.emit("join", {"room": room_id}, callback=True)["ok"]
            for sio in sockets:
                assert sio.emit("leave", {"room": room_id}, callback=True)["ok"]
        storm = notices(bob)
        if time.monotonic() - started < self.INTERVAL:
            assert storm == [("join", "alice")]
        # another user's notice is not held back by alice's
        carol = socket_for(accounts.logged_in_client("carol"))
        assert carol.emit("join", {"room": room_id}, callback=True)["ok"]
        assert ("join", "carol") in notices(bob)
        # when the interval is over, the held-back leave is sent: alice is gone
        later = wait_for_notice(bob, ("leave", "alice"))
        assert [n for n in storm + later if n[1] == "alice"][-1] == ("leave", "alice")
        assert len([n for n in storm + later if n[1] == "alice"]) <= 3

    def test_a_state_the_last_notice_told_is_not_repeated(self, room, socket_for):
        alice_http, bob, room_id = room
        alice = socket_for(alice_http)
        assert alice.emit("join", {"room": room_id}, callback=True)["ok"]
        assert notices(bob) == [("join", "alice")]
        # a leave and a join again within the interval: alice is still there when it ends
        assert alice.emit("leave", {"room": room_id}, callback=True)["ok"]
        assert alice.emit("join", {"room": room_id}, callback=True)["ok"]
        assert notices(bob) == []
        # once the interval is over alice is there, as the last notice said: nothing comes
        time.sleep(self.INTERVAL + 0.5)  # a window for what must not come
        assert notices(bob) == []
