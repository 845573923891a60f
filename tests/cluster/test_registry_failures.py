"""The connection registry when things break: Redis down or restarted, a worker SIGKILLed.

Its guarantees are in app/realtime/connections.py: a revocation made while Redis is down
still closes the sockets (each worker re-checks its sessions in the database), the shared
index comes back after a Redis restart, and a dead worker's sockets stop counting.
"""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from cluster_helpers import Cluster, RedisServer, need_cluster_servers, post_form_to, socket_on
from livechat import ChatUser, connect_refusal, wait_until

PASSWORD = "correct horse battery"
SESSION_CHECK = 5.0  # app/realtime/connections.py: SESSION_CHECK_MAX
HEARTBEAT, ENTRY_TTL = 2.0, 10.0


@pytest.fixture(scope="module")
def redis_and_cluster(tmp_path_factory):
    need_cluster_servers()
    tmp = tmp_path_factory.mktemp("registry-failures")
    server = RedisServer(tmp)
    server.start()
    cluster = Cluster(tmp, redis_url=server.url, env={"SOCKETS_PER_USER": "2"})
    yield server, cluster
    cluster.stop()
    server.kill()


def user(cluster, prefix: str) -> ChatUser:
    return ChatUser(cluster.url, f"{prefix}-{uuid.uuid4().hex[:8]}", PASSWORD).signup()


def refused(cluster, worker: str, person: ChatUser) -> str | None:
    """The code a new socket on `worker` is refused with, or None when it connects."""
    refusal = connect_refusal(cluster.worker_url(worker), person.cookie_header())
    return refusal and refusal["message"]


def restart(server: RedisServer) -> None:
    # a worker subscribes at its first connection: wait for as many as there were
    subscribed = server.subscribers()
    server.kill()
    server.start()
    wait_until(lambda: server.subscribers() == subscribed, 30, "workers to resubscribe")


def test_a_logout_while_redis_is_down_still_closes_the_socket_on_another_worker(
    redis_and_cluster,
):
    server, cluster = redis_and_cluster
    alice = user(cluster, "alice")
    room = alice.create_room(f"r-{uuid.uuid4().hex[:6]}")
    sock = socket_on(cluster, "w1", alice, room)
    subscribed = server.subscribers()
    try:
        server.kill()
        started = time.monotonic()
        assert post_form_to(cluster.worker_url("w2"), alice, "/logout").status_code == 303
        # no message can cross; w1's own database re-check finds the session gone
        sock.wait_closed_by_server(SESSION_CHECK + 2)
        assert time.monotonic() - started < SESSION_CHECK + 2
    finally:
        sock.close()
        server.start()
        wait_until(lambda: server.subscribers() == subscribed, 30, "workers to resubscribe")


def test_after_a_redis_restart_the_index_is_rebuilt(redis_and_cluster):
    server, cluster = redis_and_cluster
    bob = user(cluster, "bob")
    room = bob.create_room(f"r-{uuid.uuid4().hex[:6]}")
    sockets = [socket_on(cluster, "w1", bob, room), socket_on(cluster, "w2", bob, room)]
    try:
        restart(server)  # the index is empty now
        # within a heartbeat both are counted again: the limit of 2 holds on w3
        wait_until(
            lambda: refused(cluster, "w3", bob) == "too_many_connections",
            HEARTBEAT + 3,
            "the rebuilt index to refuse a third socket",
            interval=0.5,
        )
        # and ending the session finds both sockets through it again
        assert post_form_to(cluster.worker_url("w3"), bob, "/logout").status_code == 303
        for sock in sockets:
            sock.wait_closed_by_server(1.0)
    finally:
        for sock in sockets:
            sock.close()


def test_the_sockets_of_a_killed_worker_stop_counting(redis_and_cluster):
    server, cluster = redis_and_cluster
    carol = user(cluster, "carol")
    room = carol.create_room(f"r-{uuid.uuid4().hex[:6]}")
    sockets = [socket_on(cluster, "w3", carol, room) for _ in range(2)]
    try:
        assert refused(cluster, "w1", carol) == "too_many_connections"
        cluster.signal_worker("w3", signal.SIGKILL)
        wait_until(lambda: not cluster.worker_alive("w3"), 10, "w3 to die")
        killed = time.monotonic()
        wait_until(
            lambda: refused(cluster, "w1", carol) is None,
            ENTRY_TTL + 3,
            "the dead worker's entries to expire",
            interval=0.5,
        )
        assert time.monotonic() - killed < ENTRY_TTL + 3
    finally:
        for sock in sockets:
            sock.close()
