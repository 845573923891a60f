"""Several worker processes post to one room at once: `seq` stays gap-free and in commit order.

Runs on SQLite (the file's write lock) and on PostgreSQL (the room's row lock), each with a
real cluster. Posters talk to the workers directly, so every worker writes; a reader keeps
joining with `since` and must never see a later seq before an earlier one.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import socketio

from cluster_helpers import cluster_on_backend, make_users

POSTERS_PER_WORKER = 2
MESSAGES_PER_POSTER = 40


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend_cluster(request, tmp_path_factory):
    # posters post as fast as acks come back, and the reader re-joins in a tight loop: load
    # that the default limits refuse by design
    cluster = cluster_on_backend(request, tmp_path_factory, "seq", {"RATE_LIMITS": "off"})
    yield cluster
    cluster.stop()


class SinceReader(threading.Thread):
    """Joins again and again with since = the last seq it has; records any skip."""

    def __init__(self, sock, room: int, expected: int):
        super().__init__(daemon=True)
        self.sock, self.room, self.expected = sock, room, expected
        self.seen: list[int] = []
        self.problems: list[str] = []
        self.rounds = 0
        self.done = threading.Event()

    def run(self) -> None:
        cursor = 0
        for self.rounds in range(1, 20_000):  # bounded; ends when everything was read
            if cursor >= self.expected:
                return
            try:
                ack = self.sock.call("join", {"room": self.room, "since": cursor}, timeout=30)
            except socketio.exceptions.TimeoutError:
                continue  # a loaded box: ask again from the same cursor
            seqs = [m["seq"] for m in ack["messages"]]
            if seqs and seqs != list(range(cursor + 1, cursor + 1 + len(seqs))):
                self.problems.append(f"since={cursor} returned {seqs[:10]}...")
                return
            self.seen += seqs
            cursor += len(seqs)
            if not seqs and self.done.is_set():
                return


def test_concurrent_posts_from_every_worker_keep_seq_gap_free(backend_cluster):
    cluster = backend_cluster
    posters_count = POSTERS_PER_WORKER * len(cluster.workers)
    users = make_users(cluster.url, posters_count + 1, "seq")
    room = users[0].create_room(f"seq-{uuid.uuid4().hex[:6]}")
    expected = posters_count * MESSAGES_PER_POSTER

    posters = []
    for i, user in enumerate(users[1:]):
        worker = cluster.workers[i % len(cluster.workers)]["name"]
        sock = user.socket(url=cluster.worker_url(worker))
        assert sock.join(room)["worker"] == worker
        posters.append(sock)
    reader_sock = users[0].socket()
    reader_sock.join(room)
    reader = SinceReader(reader_sock, room, expected)
    acks: dict[int, list[dict]] = {}
    errors: list[str] = []

    def post_all(index: int, sock) -> None:
        mine = acks.setdefault(index, [])
        for n in range(MESSAGES_PER_POSTER):
            client_id = uuid.uuid4().hex
            for _ in range(5):  # a slow ack (a loaded box) is retried, as clients do
                try:
                    ack = sock.call(
                        "message",
                        {"room": room, "message": f"poster {index} #{n}", "client_id": client_id},
                        timeout=30,
                    )
                    break
                except socketio.exceptions.TimeoutError:
                    continue
            else:
                errors.append(f"poster {index} message {n}: no ack")
                return
            if not ack.get("ok"):
                errors.append(str(ack))
                return
            mine.append(ack)

    threads = [
        threading.Thread(target=post_all, args=(i, s), daemon=True) for i, s in enumerate(posters)
    ]
    try:
        reader.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
            assert not t.is_alive(), "a poster hung"
        reader.done.set()
        reader.join(timeout=60)
        assert not reader.is_alive(), "the since reader hung"

        assert errors == []
        stored = users[0].all_messages(room)
        assert [m["seq"] for m in stored] == list(range(1, expected + 1))
        acked_seqs = sorted(a["seq"] for mine in acks.values() for a in mine)
        assert acked_seqs == list(range(1, expected + 1))
        # each poster's own messages are in the order it sent them
        for index, mine in acks.items():
            seqs = [a["seq"] for a in mine]
            assert seqs == sorted(seqs), index
        assert reader.problems == []
        assert reader.seen == list(range(1, expected + 1))
        assert reader.rounds > 2  # it read while the posters wrote, not only at the end
    finally:
        for s in [*posters, reader_sock]:
            s.close()
