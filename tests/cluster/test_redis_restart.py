"""Redis goes away and comes back: every worker delivers again, and `since` fills the gap."""

from __future__ import annotations

import uuid

import pytest
import requests

from cluster_helpers import (
    Cluster,
    RedisServer,
    make_users,
    need_cluster_servers,
    sockets_on_workers,
)
from livechat import wait_until


@pytest.fixture(scope="module")
def redis_and_cluster(tmp_path_factory):
    """A Redis this test owns (so it can restart it) and a cluster that uses it."""
    need_cluster_servers()
    tmp = tmp_path_factory.mktemp("redis-restart")
    server = RedisServer(tmp)
    server.start()
    cluster = Cluster(tmp, redis_url=server.url)
    yield server, cluster
    cluster.stop()
    server.kill()


def test_after_a_redis_restart_every_worker_delivers_and_nothing_acked_is_lost(redis_and_cluster):
    server, cluster = redis_and_cluster
    users = make_users(cluster.url, 3, "redis")
    room = users[0].create_room(f"redis-{uuid.uuid4().hex[:6]}")
    sockets = list(sockets_on_workers(users, room, wanted=3, resync=True).values())
    try:
        assert len(sockets) == 3
        assert server.subscribers() == 3
        first = sockets[0].send(room, "before")
        for s in sockets:
            s.wait_for_seq(room, first["seq"])

        server.kill()
        # ready no more: every worker says why, with a 503
        for worker in cluster.workers:
            ready = requests.get(cluster.worker_url(worker["name"]) + "/readyz", timeout=10)
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] == "down"
            assert ready.json()["error"] == "not_ready"
        # posting still works: the database is the truth; the broadcasts are lost
        during = [s.send(room, f"while redis is down {i}") for i, s in enumerate(sockets)]
        assert all(a["ok"] for a in during), during

        server.start()
        # each worker's listener resubscribes by itself (python-socketio retries with backoff)
        wait_until(lambda: server.subscribers() == 3, 30, "3 workers to resubscribe")
        for worker in cluster.workers:
            ready = requests.get(cluster.worker_url(worker["name"]) + "/readyz", timeout=10)
            assert ready.status_code == 200, ready.text

        # every worker delivers again: one message from each reaches all three
        after = [s.send(room, f"after from {s.worker}") for s in sockets]
        stored = users[0].all_messages(room)
        assert [m["seq"] for m in stored] == list(range(1, 8))
        acked = {first["id"]} | {a["id"] for a in during + after}
        assert acked == {m["id"] for m in stored}
        for s in sockets:
            for ack in after:
                s.wait_for(
                    lambda got, i=ack["id"]: any(m["id"] == i for m in got), 20, "a broadcast"
                )
            # the jump in seq made each client re-join with since: nothing is missing
            s.wait_merged(room, acked)
            assert [m["seq"] for m in s.merged(room)] == list(range(1, 8))
            assert s.resyncs >= 1
            broadcast_ids = [m["id"] for m in s.received]
            assert len(broadcast_ids) == len(set(broadcast_ids))
    finally:
        for s in sockets:
            s.close()
