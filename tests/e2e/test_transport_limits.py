"""The Socket.IO transport of real servers (`flask-chat serve`, a gunicorn gevent worker):
UTF-8 frames, answers capped in bytes, coalesced notices, whole large frames, and
malformed packets that neither flood the log nor keep their connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import websocket

from livechat import ROOT, ChatUser, ServerProcess, embedded_env, free_port, start_serve

CAP = 64 * 1024
# a message of 4,000 four-byte characters (the default MESSAGE_MAX_LENGTH)
EMOJI = "\U0001f600"
BIG = EMOJI * 4000
# accents, right-to-left text, an emoji with a skin tone and a flag
MIXED = "açaí, São Paulo · שלום עולם · مرحبا · 👍🏽 🇧🇷 · 𝄞"


def start(tmp: Path, kind: str, env: dict[str, str]) -> tuple[str, ServerProcess]:
    """`flask-chat serve`, or one gunicorn gevent worker as the cluster runs it, on SQLite."""
    env = {"LOG_FORMAT": "text", **env}
    if kind == "serve":
        server, base = start_serve(tmp, **env)
        return base, server
    port = free_port()
    env = embedded_env(tmp, GUNICORN_BIND=f"127.0.0.1:{port}", **env)
    migrate = [sys.executable, "-m", "app.cli", "migrate"]
    subprocess.run(migrate, env={**os.environ, **env}, check=True, timeout=60)
    conf = str(ROOT / "deploy" / "gunicorn.conf.py")
    args = [sys.executable, "-m", "gunicorn", "-c", conf, "app.wsgi:app"]
    server = ServerProcess(args, env=env, log_path=tmp / f"{kind}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        server.wait_healthy(base + "/healthz")
    except Exception:
        server.stop()
        raise
    return base, server


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """`flask-chat serve` with REPLY_MAX_BYTES of 64 KiB and the default notice interval."""
    # 4,000 four-byte characters are 16,000 bytes: above the default MESSAGE_MAX_BYTES
    env = {"REPLY_MAX_BYTES": str(CAP), "MESSAGE_MAX_BYTES": "16000"}
    base, server = start(tmp_path_factory.mktemp("capped"), "serve", env)
    yield base, server
    server.stop()


@pytest.fixture
def user():
    """Signs a new user up on a server; their HTTP sessions are closed after the test."""
    made: list[ChatUser] = []

    def make(base: str, prefix: str) -> ChatUser:
        made.append(ChatUser(base, f"{prefix}-{uuid.uuid4().hex[:8]}").signup())
        return made[-1]

    yield make
    for chat_user in made:
        chat_user.http.close()


class RawSocket:
    """A Socket.IO client spoken by hand over one WebSocket, to see the frames themselves."""

    def __init__(self, chat_user: ChatUser, connect: bool = True):
        url = chat_user.base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(
            url, header=[f"Cookie: {chat_user.cookie_header()}"], timeout=10
        )
        assert self.ws.recv().startswith("0{")  # Engine.IO open
        if connect:
            self.ws.send("40")
            assert self.recv().startswith("40{")

    def recv(self) -> str:
        """The next frame that is not an Engine.IO ping (answered, as a client must)."""
        while True:
            frame = self.ws.recv()
            if frame != "2":
                return frame
            self.ws.send("3")

    def call(self, event: str, data: dict, ack_id: int = 1) -> tuple[dict, int]:
        """Emit with an ack; the ack and the size of its frame in bytes."""
        self.ws.send(f"42{ack_id}" + json.dumps([event, data]))
        prefix = f"43{ack_id}"
        while True:
            frame = self.recv()
            if frame.startswith(prefix):
                return json.loads(frame[len(prefix) :])[0], len(frame.encode())

    def next_event(self, name: str) -> tuple[object, int]:
        while True:
            frame = self.recv()
            if frame.startswith("42["):
                event = json.loads(frame[2:])
                if event[0] == name:
                    return event[1], len(frame.encode())

    def closed_by_server(self) -> bool:
        """Read until the server closes the connection (True), or anything else comes."""
        for _ in range(20):
            try:
                frame = self.recv()
            except (websocket.WebSocketConnectionClosedException, OSError):
                return True
            if not self.ws.connected:
                return True  # the close frame was read
            if frame not in ("1", "6"):  # an Engine.IO close or no-op may come first
                return False
        return False

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()  # close() leaves the socket of a connection the server closed


# JSON as UTF-8


def test_a_broadcast_of_four_byte_characters_is_four_bytes_each_and_decodes_identically(
    capped, user
):
    base, _ = capped
    alice, bob = user(base, "utf8a"), user(base, "utf8b")
    room = alice.create_room(f"utf8-{uuid.uuid4().hex[:6]}")
    sender, watcher = alice.socket(), RawSocket(bob)
    listener = bob.socket()
    try:
        sender.join(room)
        listener.join(room)
        watcher.call("join", {"room": room})
        for text in (BIG, MIXED):
            assert sender.send(room, text)["ok"]
            message, frame_bytes = watcher.next_event("message")
            assert message["message"] == text
            assert frame_bytes < len(text.encode()) + 300  # UTF-8, plus the envelope
        listener.wait_for_seq(room, 2)
        assert [m["message"] for m in listener.received] == [BIG, MIXED]
        history = alice.history(room)
        assert [m["message"] for m in history["messages"]] == [BIG, MIXED]
    finally:
        sender.close()
        listener.close()
        watcher.close()


def test_the_first_broadcast_frame_is_about_four_bytes_a_character(capped, user):
    base, _ = capped
    alice = user(base, "frame")
    room = alice.create_room(f"frame-{uuid.uuid4().hex[:6]}")
    raw, sender = RawSocket(alice), alice.socket()
    try:
        raw.call("join", {"room": room})
        sender.join(room)
        assert sender.send(room, BIG)["ok"]
        _, frame_bytes = raw.next_event("message")
        # 4 bytes a character, not the 12 of a "\ud83d\ude00" escape
        assert 16_000 <= frame_bytes <= 16_400
    finally:
        raw.close()
        sender.close()


# answers capped in bytes


def test_a_join_with_since_0_is_under_the_cap_and_paging_gets_every_message_once(capped, user):
    base, _ = capped
    alice = user(base, "cap")
    room = alice.create_room(f"cap-{uuid.uuid4().hex[:6]}")
    sender = alice.socket()
    count = 30  # 16 KB each: about 480 KB in all, over seven answers
    try:
        sender.join(room)
        for i in range(count):
            assert sender.send(room, f"{i:02d}" + EMOJI * 3998)["ok"]
    finally:
        sender.close()

    raw = RawSocket(alice)
    try:
        seqs, since, answers = [], 0, 0
        while True:
            ack, frame_bytes = raw.call("join", {"room": room, "since": since}, ack_id=answers)
            answers += 1
            assert ack["ok"] and ack["messages"], ack
            assert frame_bytes <= CAP + 200
            seqs += [m["seq"] for m in ack["messages"]]
            if not ack["more"]:
                break
            since = ack["messages"][-1]["seq"]
        assert seqs == list(range(1, count + 1))
        assert answers >= count * 16_000 // CAP

        ack, frame_bytes = raw.call("join", {"room": room}, ack_id=99)  # without since
        assert ack["more"] is True and frame_bytes <= CAP + 200
        assert ack["messages"][-1]["seq"] == count
    finally:
        raw.close()

    # and the history API, walking back
    before, seqs = None, []
    while True:
        page = alice.history(room, before)
        assert page["messages"]
        seqs = [m["seq"] for m in page["messages"]] + seqs
        if not page["more"]:
            break
        before = page["next_before"]
    assert seqs == list(range(1, count + 1))


# join/leave notices


def test_a_storm_of_joins_and_leaves_of_one_user_makes_one_notice(capped, user):
    base, _ = capped
    alice, bob, carol = user(base, "storm"), user(base, "watch"), user(base, "mark")
    room = alice.create_room(f"storm-{uuid.uuid4().hex[:6]}")
    watcher = bob.socket()
    sockets = [alice.socket() for _ in range(8)]
    marker = carol.socket()
    try:
        watcher.join(room)
        for _ in range(5):
            for sock in sockets:
                sock.join(room)
            for sock in sockets:
                assert sock.call("leave", {"room": room}) == {"ok": True}
        # carol's notice is sent after every notice of the storm: once it is in, they all are
        marker.join(room)
        watcher.wait_until(
            lambda: any(n["username"] == carol.username for n in watcher.notices),
            10,
            "carol's join notice",
        )
        from_alice = [n for n in watcher.notices if n["username"] == alice.username]
        # one per 5 s (NOTICE_INTERVAL): a slow machine may cross into a second interval
        assert 1 <= len(from_alice) <= 2, from_alice
        assert from_alice[0]["kind"] == "join"
        # the storm ended with alice gone: once the interval is over, the room is told
        watcher.wait_until(
            lambda: (
                [n["kind"] for n in watcher.notices if n["username"] == alice.username][-1]
                == "leave"
            ),
            15,
            "alice's held-back leave notice",
        )
    finally:
        for sock in [watcher, marker, *sockets]:
            sock.close()


# malformed packets


GARBAGE = [
    '42["message", {"room": 1,',  # JSON cut short
    "49[]",  # no such Socket.IO packet type
    "4" + "\x00\xff" * 20,  # not a Socket.IO packet at all
    b"\x00\xff\xfe binary garbage",
    "x-not-engine-io",  # not an Engine.IO packet
    "9",
    "",
]


def test_a_connection_sending_garbage_is_closed_and_logged_in_one_line(capped, user):
    base, server = capped
    alice = user(base, "garbage")
    room = alice.create_room(f"garbage-{uuid.uuid4().hex[:6]}")
    good = alice.socket()
    good.join(room)
    raw = RawSocket(alice)
    try:
        closed = False
        for packet in GARBAGE * 3:
            try:
                if isinstance(packet, bytes):
                    raw.ws.send_binary(packet)
                else:
                    raw.ws.send(packet)
            except (websocket.WebSocketException, OSError):
                closed = True
                break
        assert closed or raw.closed_by_server()
        # the well-formed client on the same server is untouched
        assert good.send(room, "still here")["ok"]
        good.wait_for_seq(room, 1)
    finally:
        raw.close()
        good.close()
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if "malformed" in line]) <= 2


def test_garbage_over_long_polling_is_logged_in_one_line_and_closes_the_session(capped, user):
    base, server = capped
    alice = user(base, "polling")
    url = base + "/socket.io/?EIO=4&transport=polling"
    opened = alice.http.get(url, timeout=10).text
    sid = json.loads(opened[opened.index("{") :])["sid"]
    session = f"{url}&sid={sid}"
    before = server.log_path.read_text(errors="replace").count("\n")
    assert alice.http.post(session, data="40", timeout=10).text == "OK"
    assert alice.http.get(session, timeout=10).text.startswith("40{")
    # Engine.IO payloads that do not decode: answered, not counted
    for _ in range(3):
        assert alice.http.post(session, data="x-garbage", timeout=10).status_code == 200
    # Socket.IO packets that do not decode: the third closes the session
    for packet in ("42[oops", "4{{{", "49"):
        alice.http.post(session, data=packet, timeout=10)
    polled = alice.http.get(session, timeout=10)
    assert polled.status_code == 400 or polled.text.startswith("1")
    assert alice.http.get(session, timeout=10).status_code == 400  # the session is gone
    new = "\n".join(server.log_path.read_text(errors="replace").splitlines()[before:])
    assert "Traceback" not in new
    # (one line, unless the lines of this minute are used up)
    assert new.count("malformed packet") <= 1
    assert new.count("undecodable long-polling packet") <= 3


def test_garbage_from_many_connections_is_logged_at_a_bounded_rate(capped, user):
    base, server = capped
    alice = user(base, "flood")
    before = server.log_path.read_text(errors="replace").count("\n")
    for _ in range(15):
        raw = RawSocket(alice)
        try:
            for packet in ("42[oops", "4{{{", "42\x00"):
                raw.ws.send(packet)
            assert raw.closed_by_server()
        finally:
            raw.close()
    new = server.log_path.read_text(errors="replace").splitlines()[before:]
    assert "Traceback" not in "\n".join(new)
    assert len([line for line in new if "malformed" in line]) <= 10  # LOG_LINES_PER_MINUTE
    # still serving
    raw = RawSocket(alice)
    try:
        assert raw.call("join", {"room": alice.create_room(uuid.uuid4().hex[:8])})[0]["ok"]
    finally:
        raw.close()


# a large frame arrives whole


@pytest.fixture(scope="module", params=["serve", "gunicorn"])
def uncapped(request, tmp_path_factory):
    """A server whose caps allow a join answer of several MB."""
    base, server = start(
        tmp_path_factory.mktemp(f"uncapped-{request.param}"),
        request.param,
        {
            "REPLY_MAX_BYTES": str(16 * 1024 * 1024),
            "MESSAGE_MAX_LENGTH": "100000",
            "MESSAGE_MAX_BYTES": "100000",
        },
    )
    yield base
    server.stop()


def test_a_join_answer_of_several_mb_arrives_whole(uncapped, user):
    alice = user(uncapped, "large")
    room = alice.create_room(f"large-{uuid.uuid4().hex[:6]}")
    sender = alice.socket()
    count = 40  # 100 KB each: a 4 MB answer
    try:
        sender.join(room)
        for i in range(count):
            assert sender.send(room, f"{i:03d}" + "x" * 99_997)["ok"]
    finally:
        sender.close()
    reader = alice.socket()
    try:
        ack = reader.call("join", {"room": room, "since": 0}, timeout=60)
        assert [m["seq"] for m in ack["messages"]] == list(range(1, count + 1))
        assert all(len(m["message"]) == 100_000 for m in ack["messages"])
        # and the connection is still sound after it
        assert reader.send(room, "after the large frame")["ok"]
    finally:
        reader.close()
