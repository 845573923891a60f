"""A burst of posts to one room from many sockets on 3 gevent workers (app/rooms/commits.py).

Every worker's committer stores what queued up a batch per transaction; across workers the
batches queue on the room's lock. The room's seqs must come out 1..N with no gap and no
repeat, and every ack must name the message its sender then receives as a broadcast.
Runs on SQLite (the file's write lock, waited for with Python sleeps) and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from cluster_helpers import MESSAGE_LIMITS_OFF, cluster_on_backend, make_users, socket_on

SOCKETS_PER_WORKER = 4
POSTS_PER_SOCKET = 25  # 300 posts on 3 workers, fired without waiting for acks


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def burst_cluster(request, tmp_path_factory):
    cluster = cluster_on_backend(request, tmp_path_factory, "group-commit", MESSAGE_LIMITS_OFF)
    yield cluster
    cluster.stop()


class AckBook:
    """The ack of every post, by its client_id; lets the test wait for all of them."""

    def __init__(self):
        self.acks: dict[str, dict | None] = {}
        self.cond = threading.Condition()

    def callback(self, client_id: str):
        def acked(ack=None):
            with self.cond:
                self.acks[client_id] = ack
                self.cond.notify_all()

        return acked

    def wait_for(self, count: int, timeout: float) -> dict[str, dict | None]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.acks) >= count, timeout), (
                f"{len(self.acks)} of {count} posts acked"
            )
            return dict(self.acks)


def test_a_burst_from_many_sockets_gets_gap_free_seqs_and_matching_acks(burst_cluster):
    cluster = burst_cluster
    users = make_users(cluster.url, SOCKETS_PER_WORKER, "gc")
    room = users[0].create_room(f"gc-{uuid.uuid4().hex[:6]}")
    sockets = [
        socket_on(cluster, worker["name"], user, room)
        for worker in cluster.workers
        for user in users
    ]
    total = len(sockets) * POSTS_PER_SOCKET
    book = AckBook()
    try:
        for n in range(POSTS_PER_SOCKET):
            for i, sock in enumerate(sockets):
                client_id = f"{i}-{n}-{uuid.uuid4().hex[:8]}"
                payload = {"room": room, "message": f"burst {i}.{n}", "client_id": client_id}
                sock.client.emit("message", payload, callback=book.callback(client_id))
        acks = book.wait_for(total, timeout=90)

        assert [a for a in acks.values() if not (a and a["ok"])] == []
        assert sorted(a["seq"] for a in acks.values()) == list(range(1, total + 1))
        assert len({a["id"] for a in acks.values()}) == total
        stored = users[0].all_messages(room)
        assert [m["seq"] for m in stored] == list(range(1, total + 1))
        assert {m["client_id"]: (m["id"], m["seq"]) for m in stored} == {
            cid: (a["id"], a["seq"]) for cid, a in acks.items()
        }

        # every socket, on every worker, receives each message once, as its ack named it
        wanted = {a["id"] for a in acks.values()}
        for sock in sockets:
            sock.wait_until(
                lambda s=sock: wanted <= {m["id"] for m in s.received},
                30,
                f"every broadcast on {sock.worker}",
            )
            got = [m for m in sock.received if m["room"] == room]
            assert len(got) == total, sock.worker
            for message in got:
                ack = acks[message["client_id"]]
                assert (message["id"], message["seq"]) == (ack["id"], ack["seq"])
    finally:
        for sock in sockets:
            sock.close()
