"""A burst of posts on one worker: no worker's Redis listener is lost, no broadcast is missed.

python-socketio's stock Redis manager publishes from every emitting greenlet, each on its
own pooled connection; a burst of ~100 concurrent publishes exhausted redis-py's pool
("Too many connections"), and the publish retry replaced the client, closing the pool and
with it the listener's subscription: for the next second or more that worker's clients
missed every other worker's broadcasts. app/realtime/queue.py is the fix; this test posts
such a burst on worker 1 while worker 2 keeps posting, and every member of the room, on
either worker, must receive every stored message once.
"""

from __future__ import annotations

import contextlib
import threading
import uuid

import pytest
import redis

from cluster_helpers import (
    MESSAGE_LIMITS_OFF,
    Cluster,
    make_users,
    need_cluster_servers,
    socket_on,
)

BURST_SOCKETS = 6
BURST_PER_SOCKET = 50  # 300 posts, fired without waiting for acks: ~300 handlers at once
STEADY_AFTER_BURST = 20  # worker 2 keeps posting this many after the burst is acked
# what the queue (stock or ours) logs when a publish or the listener fails
QUEUE_TROUBLE = (
    "Too many connections",
    "Cannot publish to redis",
    "Cannot receive from redis",
    "Redis message queue",
)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    need_cluster_servers()
    cluster = Cluster(tmp_path_factory.mktemp("queue-burst"), workers=2, env=MESSAGE_LIMITS_OFF)
    yield cluster
    cluster.stop()


class Burst:
    """Posts from several sockets at once, none waiting for its acks; counts the acks."""

    def __init__(self, sockets, room: int, per_socket: int):
        self.sockets, self.room, self.per_socket = sockets, room, per_socket
        self.acks: list[dict] = []
        self.cond = threading.Condition()

    def _acked(self, ack=None) -> None:
        with self.cond:
            self.acks.append(ack)
            self.cond.notify_all()

    def fire(self) -> None:
        for n in range(self.per_socket):
            for i, sock in enumerate(self.sockets):
                payload = {
                    "room": self.room,
                    "message": f"burst {i}.{n}",
                    "client_id": uuid.uuid4().hex,
                }
                sock.client.emit("message", payload, callback=self._acked)

    def wait_acked(self, timeout: float) -> list[dict]:
        total = len(self.sockets) * self.per_socket
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.acks) >= total, timeout), (
                f"{len(self.acks)} of {total} burst posts acked"
            )
            return list(self.acks)


def test_a_burst_on_one_worker_loses_no_broadcast_on_any_worker(two_workers):
    cluster = two_workers
    w1, w2 = (w["name"] for w in cluster.workers)
    burster, poster, reader = make_users(cluster.url, 3, "burst")
    room = burster.create_room(f"burst-{uuid.uuid4().hex[:6]}")
    queue_redis = redis.Redis.from_url(cluster.state["redis_url"], socket_timeout=5)

    readers = {w1: socket_on(cluster, w1, reader, room), w2: socket_on(cluster, w2, reader, room)}
    steady = socket_on(cluster, w2, poster, room)
    bursters = [socket_on(cluster, w1, burster, room) for _ in range(BURST_SOCKETS)]
    burst = Burst(bursters, room, BURST_PER_SOCKET)
    steady_acks: list[dict] = []
    burst_done = threading.Event()

    def post_steadily() -> None:
        # worker 2 posts one message after another through the burst and a little after
        after = 0
        for n in range(2000):  # bounded
            steady_acks.append(steady.send(room, f"steady {n}"))
            if burst_done.is_set():
                after += 1
                if after >= STEADY_AFTER_BURST:
                    return

    connections_before = queue_redis.info("stats")["total_connections_received"]
    steady_thread = threading.Thread(target=post_steadily, daemon=True)
    try:
        steady_thread.start()
        burst.fire()
        burst_acks = burst.wait_acked(timeout=60)
        burst_done.set()
        steady_thread.join(timeout=60)
        assert not steady_thread.is_alive(), "the steady poster hung"
        new_connections = (
            queue_redis.info("stats")["total_connections_received"] - connections_before
        )

        assert all(a and a["ok"] for a in burst_acks + steady_acks)
        stored = burster.all_messages(room)
        assert len(stored) == len(burst_acks) + len(steady_acks)
        assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
        wanted = {m["id"]: m for m in stored}

        def shape(m: dict) -> tuple:
            return (m["id"], m["seq"], m["room"], m["username"], m["message"])

        for worker, sock in readers.items():
            # each reader waits (bounded) for every stored message; what it has then is judged
            with contextlib.suppress(TimeoutError):
                sock.wait_until(
                    lambda s=sock: wanted.keys() <= {m["id"] for m in s.received},
                    30,
                    f"every broadcast on {worker}",
                )
            got = [m for m in sock.received if m["room"] == room]
            missing = sorted(wanted[i]["seq"] for i in wanted.keys() - {m["id"] for m in got})
            assert missing == [], f"the reader on {worker} missed {len(missing)}: {missing[:20]}"
            assert sorted(map(shape, got)) == sorted(map(shape, stored)), worker

        log = cluster.output()
        trouble = [line for line in log.splitlines() if any(t in line for t in QUEUE_TROUBLE)]
        assert trouble == [], "\n".join(trouble[:10])
        # the burst went through a fixed number of Redis connections, not one per publish
        assert new_connections <= 20, new_connections
    finally:
        burst_done.set()
        for sock in [*readers.values(), steady, *bursters]:
            sock.close()
        queue_redis.close()
