"""Socket.IO abuse limits on the real `flask-chat serve`, with its default limits."""

import time
import uuid

import pytest

from app.limits import DEFAULT_LIMITS, parse_rates
from livechat import ChatUser

(PER_CONNECTION,) = parse_rates(DEFAULT_LIMITS["message.connection"])
(PER_USER,) = parse_rates(DEFAULT_LIMITS["message.user"])


@pytest.fixture
def alice_in_a_room(served):
    alice = ChatUser(served, f"alice-{uuid.uuid4().hex[:8]}").signup()
    room = alice.create_room(f"flood-{uuid.uuid4().hex[:8]}")
    return alice, room


def test_a_flood_from_one_socket_is_refused_and_after_retry_after_the_user_posts_again(
    alice_in_a_room, served
):
    alice, room = alice_in_a_room
    listener = ChatUser(served, f"bob-{uuid.uuid4().hex[:8]}").signup().socket()
    sock = alice.socket()
    try:
        listener.join(room)
        sock.join(room)
        started = time.monotonic()
        acks = [sock.send(room, f"flood {i}") for i in range(PER_CONNECTION.count + 10)]
        elapsed = time.monotonic() - started
        accepted = [a for a in acks if a["ok"]]
        refused = [a for a in acks if not a["ok"]]
        # the burst, plus one per interval that passed while it was being sent
        assert acks[: PER_CONNECTION.count] == accepted[: PER_CONNECTION.count]
        assert len(accepted) <= PER_CONNECTION.count + elapsed / PER_CONNECTION.interval + 1
        assert {a["error"] for a in refused} <= {"rate_limited"}
        for ack in refused:
            assert 0 < ack["retry_after"] <= PER_CONNECTION.interval
            assert "Try again in" in ack["detail"]

        # still flooding: refused; after waiting what the refusal said, allowed
        for _ in range(20):  # bounded: one refill per interval at most
            probe = sock.send(room, "after the wait")
            if not probe["ok"]:
                break
            accepted.append(probe)
        assert probe["error"] == "rate_limited"
        time.sleep(probe["retry_after"])
        again = sock.send(room, "after the wait")
        assert again["ok"], again

        # nothing refused was stored or broadcast
        acked_ids = {a["id"] for a in accepted} | {again["id"]}
        listener.wait_for_seq(room, again["seq"])
        assert again["seq"] == len(acked_ids)
        assert {m["id"] for m in alice.all_messages(room)} == acked_ids
        assert sorted(m["id"] for m in listener.received) == sorted(acked_ids)
    finally:
        sock.close()
        listener.close()


def test_the_per_user_limit_holds_across_the_users_sockets(alice_in_a_room):
    alice, room = alice_in_a_room
    tabs = [alice.socket(), alice.socket()]
    try:
        for tab in tabs:
            tab.join(room)
        # each socket stays under its own limit; together they pass the user's
        per_tab = PER_USER.count // 2 + 3
        assert per_tab < PER_CONNECTION.count
        started = time.monotonic()
        acks = [tabs[i % 2].send(room, f"tab {i}") for i in range(2 * per_tab)]
        elapsed = time.monotonic() - started
        accepted = [a for a in acks if a["ok"]]
        assert all(a["ok"] for a in acks[: PER_USER.count])
        assert len(accepted) <= PER_USER.count + elapsed / PER_USER.interval + 1
        assert len(accepted) < len(acks)
        assert all(a["error"] == "rate_limited" for a in acks if not a["ok"])
        assert len(alice.all_messages(room)) == len(accepted)
    finally:
        for tab in tabs:
            tab.close()


def test_repeated_joins_from_one_socket_are_limited(alice_in_a_room):
    alice, room = alice_in_a_room
    (joins,) = parse_rates(DEFAULT_LIMITS["join.connection"])
    sock = alice.socket()
    try:
        acks = [sock.call("join", {"room": room, "since": 0}) for _ in range(joins.count + 5)]
        assert all(a["ok"] for a in acks[: joins.count])
        refused = [a for a in acks if not a["ok"]]
        assert len(refused) >= 4
        assert all(a["error"] == "rate_limited" and a["retry_after"] > 0 for a in refused)
        # another tab of the same user has its own connection allowance
        other = alice.socket()
        try:
            assert other.call("join", {"room": room})["ok"]
        finally:
            other.close()
    finally:
        sock.close()
