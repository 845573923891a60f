"""bench/leanio.py, the load generator's hand-written client, against the real `flask-chat serve`.

The load figures in bench/RESULTS.md are only as good as this client's counting: here it
must log in with the session cookie and Origin, join, post, and see every broadcast of the
room exactly once on every socket, with the acks' ids.
"""

import json
import sys
import time
import uuid

import pytest

from livechat import ROOT, ChatUser

sys.path.insert(0, str(ROOT / "bench"))
from leanio import LeanSocket, Loop, Refused  # noqa: E402


def lean_socket(user: ChatUser, received: list[bytes]) -> LeanSocket:
    lean = LeanSocket(received.append)
    return lean.connect(user.base_url, cookie=user.cookie_header(), query="affinity=t")


def test_every_socket_gets_every_broadcast_once_and_acks_name_them(served):
    suffix = uuid.uuid4().hex[:8]
    alice = ChatUser(served, f"lean-a-{suffix}").signup()
    bob = ChatUser(served, f"lean-b-{suffix}").signup()
    room = alice.create_room(f"lean-{suffix}")
    inboxes: list[list[bytes]] = [[], [], []]
    sockets = [lean_socket(u, box) for u, box in zip([alice, bob, bob], inboxes, strict=True)]
    loop = Loop()
    try:
        for lean in sockets:
            assert lean.call("join", {"room": room})["ok"]
            loop.add(lean)
        acks: list[dict] = []
        for i in range(5):
            for n, lean in enumerate(sockets):
                lean.emit("message", {"room": room, "message": f"m{n}-{i}"}, acks.append)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            len(acks) < 15 or any(len(box) < 15 for box in inboxes)
        ):
            loop.run(time.monotonic() + 0.1)
        loop.run(time.monotonic() + 0.3)  # anything extra would arrive now
        assert all(ack["ok"] for ack in acks) and len(acks) == 15
        acked = {ack["id"] for ack in acks}
        for box in inboxes:
            events = [json.loads(payload) for payload in box]
            messages = [data for name, data in events if name == "message"]
            assert sorted(m["id"] for m in messages) == sorted(acked)  # each once
            texts = {f"m{n}-{i}" for n in range(3) for i in range(5)}
            assert {m["message"] for m in messages} == texts
        assert not any(lean.closed for lean in sockets)
    finally:
        for lean in sockets:
            lean.close()
        loop.close()


@pytest.mark.parametrize(
    ("cookie", "origin"),
    [("", None), ("session=forged", None), (None, "https://evil.example")],
)
def test_refusals_are_raised(served, cookie, origin):
    """Without a live session, or from another site, the connection is refused."""
    if cookie is None:
        cookie = ChatUser(served, f"lean-o-{uuid.uuid4().hex[:8]}").signup().cookie_header()
    with pytest.raises(Refused):
        LeanSocket().connect(served, cookie=cookie, origin=origin, timeout=5)
