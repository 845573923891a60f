"""Pre-framed broadcasts (app/realtime/fanout.py) across workers: the Redis manager
(app/realtime/queue.py) delivers what a worker posts to its own clients and, through Redis,
to the other worker's, each framed once per broadcast; WebSocket and long-polling clients on
both workers get every message whole (7-, 16- and 64-bit frame lengths) in seq order."""

from __future__ import annotations

import uuid

import pytest

from cluster_helpers import Cluster, make_users, need_cluster_servers, socket_on


def text_of(i: int) -> str:
    filler = ("", "é" * 300, "é" * 40_000)[i % 3]  # the last: 80,000 bytes, above 64 KiB
    return f"m{i}:{filler}"


@pytest.fixture(scope="module")
def big_cluster(tmp_path_factory):
    """2 workers + nginx + Redis, taking messages of up to 100,000 characters."""
    need_cluster_servers()
    env = {"RATE_LIMITS": "off", "MESSAGE_MAX_LENGTH": "100000", "MESSAGE_MAX_BYTES": "400000"}
    running = Cluster(tmp_path_factory.mktemp("fanout-cluster"), workers=2, env=env)
    yield running
    running.stop()


def test_clients_on_both_workers_get_every_preframed_broadcast_whole(big_cluster):
    users = make_users(big_cluster.url, 3, "cf")
    room = users[0].create_room(f"cf-{uuid.uuid4().hex[:6]}")
    sockets = []
    try:
        poster = socket_on(big_cluster, "w1", users[0], room)
        sockets.append(poster)
        for worker in ("w1", "w2"):
            for user in users[1:]:
                sockets.append(socket_on(big_cluster, worker, user, room))
            polling = users[1].socket(url=big_cluster.worker_url(worker), transports=["polling"])
            sockets.append(polling)
            assert polling.join(room)["worker"] == worker
        posts = 9
        for i in range(posts):
            assert poster.send(room, text_of(i))["ok"]
        for sock in sockets:
            sock.wait_for_seq(room, posts, timeout=20)
        texts = [text_of(i) for i in range(posts)]
        for sock in sockets:
            got = [m for m in sock.received if m["room"] == room]
            assert [m["seq"] for m in got] == list(range(1, posts + 1)), sock.worker
            assert [m["message"] for m in got] == texts
            assert sock.client.connected and sock.connects == 1
    finally:
        for sock in sockets:
            sock.close()
