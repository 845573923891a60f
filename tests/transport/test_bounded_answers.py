"""Join acks, history pages and the room page are capped in bytes as well as in count."""

import json
import re

import pytest

CAP = 20_000
# 1,000 four-byte characters: 4,000 bytes of UTF-8, about 4.2 KB of wire JSON a message
BIG = "\U0001f600" * 1000
COUNT = 30


@pytest.fixture
def settings(settings):
    settings.reply_max_bytes = CAP
    settings.notice_interval = 0
    return settings


@pytest.fixture
def big_room(accounts, socket_for):
    client = accounts.logged_in_client()
    room_id = accounts.create_room(client, "big")
    sio = socket_for(client)
    assert sio.emit("join", {"room": room_id}, callback=True)["ok"]
    for i in range(1, COUNT + 1):
        ack = sio.emit("message", {"room": room_id, "message": f"{i} {BIG}"}, callback=True)
        assert ack["ok"], ack
    sio.get_received()
    return client, sio, room_id


def size(messages) -> int:
    return len(json.dumps(messages, separators=(",", ":"), ensure_ascii=False).encode())


def test_a_join_with_since_pages_through_every_message_once_under_the_cap(big_room):
    _, sio, room_id = big_room
    seqs, since = [], 0
    while True:
        ack = sio.emit("join", {"room": room_id, "since": since}, callback=True)
        assert ack["ok"] and ack["messages"] and size(ack["messages"]) <= CAP
        seqs += [m["seq"] for m in ack["messages"]]
        if not ack["more"]:
            break
        since = ack["messages"][-1]["seq"]
    assert seqs == list(range(1, COUNT + 1))


def test_a_join_without_since_gives_the_newest_that_fit_and_says_more(big_room):
    _, sio, room_id = big_room
    ack = sio.emit("join", {"room": room_id}, callback=True)
    assert ack["more"] is True and size(ack["messages"]) <= CAP
    assert [m["seq"] for m in ack["messages"]] == list(
        range(COUNT + 1 - len(ack["messages"]), COUNT + 1)
    )


def test_history_pages_are_capped_and_walk_back_through_every_message_once(big_room):
    client, _, room_id = big_room
    seqs, before = [], None
    while True:
        query = f"?limit=100&before={before}" if before else "?limit=100"
        response = client.get(f"/api/chats/{room_id}/messages{query}")
        page = response.get_json()
        assert page["messages"] and size(page["messages"]) <= CAP
        assert len(response.get_data()) <= CAP + 200  # the envelope is small
        seqs = [m["seq"] for m in page["messages"]] + seqs
        if not page["more"]:
            break
        assert page["next_before"] == page["messages"][0]["seq"]
        before = page["next_before"]
    assert seqs == list(range(1, COUNT + 1))


def test_the_room_page_renders_the_newest_that_fit(big_room):
    client, _, room_id = big_room
    page = client.get(f"/chat/{room_id}").get_data(as_text=True)
    embedded = re.search(r'id="initial-messages">(.*?)</script>', page, re.S).group(1)
    messages = json.loads(embedded)
    assert 1 <= len(messages) < COUNT and size(messages) <= CAP
    assert messages[-1]["seq"] == COUNT
    assert 'data-more="true"' in page


def test_http_json_is_utf8_not_escapes(big_room):
    client, _, room_id = big_room
    body = client.get(f"/api/chats/{room_id}/messages?limit=1").get_data()
    assert BIG.encode() in body and b"\\ud83d" not in body
