"""Broadcasts framed once per broadcast (app/realtime/fanout.py), through the real
`flask-chat serve`: every client of a room, whatever its transport (WebSocket, long-polling,
long-polling upgraded to WebSocket), gets every broadcast whole and in the same order;
frames of every length encoding (7-, 16- and 64-bit) arrive whole; a client that negotiated
permessage-deflate still gets compressed frames it decodes.

A burst of posts (no waiting for acks) makes each connection's writer find several
broadcasts queued at once, so the batched write is exercised too."""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest

from livechat import ROOT, ChatUser, start_serve

sys.path.insert(0, str(ROOT / "bench"))
from leanio import LeanSocket, Loop  # noqa: E402

POSTS = 30
# posts per burst: python-engineio's long-polling client refuses a payload of more than 16
# packets, which a burst of 30 would be (a browser has no such limit)
WAVE = 10


def text_of(i: int) -> str:
    """Post i's text: its frame's length is 7-bit, 16-bit or (above 64 KiB) 64-bit."""
    filler = ("", "é" * 300, "é" * 40_000)[i % 3]  # "é" is 2 bytes: 80,000 bytes
    return f"m{i}:{filler}"


@pytest.fixture(scope="module")
def roomy(tmp_path_factory):
    """`flask-chat serve` taking messages of up to 100,000 characters, without rate limits."""
    server, base = start_serve(
        tmp_path_factory.mktemp("fanout"),
        RATE_LIMITS="off",
        MESSAGE_MAX_LENGTH="100000",
        MESSAGE_MAX_BYTES="400000",
    )
    try:
        yield base
    finally:
        server.stop()


class FrameCountingSocket(LeanSocket):
    """A lean client that counts the compressed (RSV1) frames it decodes."""

    compressed = 0

    def _frame(self, b0: int, opcode: int, payload: bytes) -> None:
        if b0 & 0x40:
            self.compressed += 1
        super()._frame(b0, opcode, payload)


def lean(user: ChatUser, inbox: list[bytes], **options) -> LeanSocket:
    sock = FrameCountingSocket(inbox.append)
    return sock.connect(user.base_url, cookie=user.cookie_header(), query="affinity=f", **options)


def messages_in(inbox: list[bytes]) -> list[dict]:
    events = [json.loads(payload) for payload in inbox]
    return [data for name, data in events if name == "message"]


def post_bursts(poster: LeanSocket, room: int, loop: Loop, fewest_received) -> list[dict]:
    """POSTS messages, sent back to back in bursts of WAVE; served by `loop` until every
    ack of a burst is in and `fewest_received()` (across the receivers) has caught up."""
    acks: list[dict] = []
    for first in range(0, POSTS, WAVE):
        for i in range(first, first + WAVE):
            message = {"room": room, "message": text_of(i), "client_id": f"c{i}"}
            poster.emit("message", message, acks.append)
        sent = first + WAVE
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (len(acks) == sent and fewest_received() >= sent):
            loop.run(time.monotonic() + 0.05)
        assert len(acks) == sent and all(ack["ok"] for ack in acks), acks[:3]
        assert fewest_received() >= sent, "a receiver is missing broadcasts"
    return acks


def test_websocket_and_polling_clients_get_every_broadcast_whole_in_one_order(roomy):
    suffix = uuid.uuid4().hex[:8]
    poster = ChatUser(roomy, f"fan-p-{suffix}").signup()
    members = [ChatUser(roomy, f"fan-{n}-{suffix}").signup() for n in range(3)]
    room = poster.create_room(f"fan-{suffix}")
    websockets = [member.socket() for member in members for _ in range(4)]
    polling = members[0].socket(transports=("polling",))
    # long-polling first, then upgraded to WebSocket (as a browser connects)
    upgraded = members[1].socket(transports=("polling", "websocket"))
    receivers = [*websockets, polling, upgraded]
    poster_inbox: list[bytes] = []
    sender = lean(poster, poster_inbox)
    loop = Loop()
    try:
        for sock in receivers:
            sock.join(room)
        assert sender.call("join", {"room": room})["ok"]
        loop.add(sender)

        def fewest_received():
            return min(len(sock.seqs(room)) for sock in receivers)

        acks = post_bursts(sender, room, loop, fewest_received)
        loop.run(time.monotonic() + 0.3)  # anything extra would arrive now

        acked = sorted(ack["id"] for ack in acks)
        texts = {text_of(i) for i in range(POSTS)}
        order = [m["id"] for m in messages_in(poster_inbox)]
        assert sorted(order) == acked  # each once
        for sock in receivers:
            got = [m for m in sock.received if m["room"] == room]
            assert [m["id"] for m in got] == order  # the same order on every connection
            assert {m["message"] for m in got} == texts  # every text whole
        assert not sender.closed and all(sock.client.connected for sock in receivers)
        assert polling.client.transport() == "polling"
        assert upgraded.client.transport() == "websocket"
    finally:
        sender.close()
        loop.close()
        for sock in receivers:
            sock.close()


def test_permessage_deflate_client_decodes_every_compressed_broadcast(roomy):
    suffix = uuid.uuid4().hex[:8]
    poster = ChatUser(roomy, f"fan-dp-{suffix}").signup()
    reader = ChatUser(roomy, f"fan-dr-{suffix}").signup()
    room = poster.create_room(f"fan-d-{suffix}")
    plain_inbox: list[bytes] = []
    deflate_inbox: list[bytes] = []
    sender = lean(poster, plain_inbox)
    deflating = lean(reader, deflate_inbox, offer_deflate=True)
    loop = Loop()
    try:
        assert deflating._inflate is not None, "the server did not accept permessage-deflate"
        for sock in (sender, deflating):
            assert sock.call("join", {"room": room})["ok"]
            loop.add(sock)
        post_bursts(sender, room, loop, lambda: len(messages_in(deflate_inbox)))
        loop.run(time.monotonic() + 0.3)

        plain = [payload for payload in plain_inbox if payload.startswith(b'["message"')]
        inflated = [payload for payload in deflate_inbox if payload.startswith(b'["message"')]
        assert len(plain) == POSTS
        assert inflated == plain  # byte for byte, in the same order
        assert deflating.compressed >= POSTS  # the broadcasts came compressed
        assert sender.compressed == 0
        assert not deflating.closed
    finally:
        for sock in (sender, deflating):
            sock.close()
        loop.close()
