"""The message queue's publisher (app/realtime/queue.py) against a real redis-server.

The cluster test (tests/cluster/test_queue_burst.py) shows what users see; these pin the
component's own promises: one connection whatever the concurrency, publish order kept,
an outage dropped and logged once, then recovered.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import pytest
import socketio

from app import codec
from app.realtime.queue import CHANNEL, RedisQueue, listen_backoff
from cluster_helpers import RedisServer, redis_binary
from livechat import wait_until
from servers import need


@pytest.fixture
def redis_server(tmp_path):
    need(redis_binary() is not None, "redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def queue_for(url: str) -> RedisQueue:
    queue = RedisQueue(url)
    # the server hands the manager its codec and its async primitives (threads here)
    socketio.Server(async_mode="threading", client_manager=queue, json=codec)
    return queue


@contextlib.contextmanager
def subscriber(server: RedisServer):
    with server.client() as client, client.pubsub(ignore_subscribe_messages=True) as pubsub:
        pubsub.subscribe(CHANNEL)
        yield pubsub


def connections_received(server: RedisServer) -> int:
    with server.client() as client:
        return client.info("stats")["total_connections_received"]


def received(pubsub, count: int) -> list[dict]:
    got = []
    for _ in range(count + 200):  # bounded: each wait is at most 1 s
        message = pubsub.get_message(timeout=1)
        if message is not None:
            got.append(codec.loads(message["data"]))
        if len(got) >= count:
            break
    return got


def test_concurrent_publishes_share_one_connection_and_keep_their_order(redis_server):
    queue = queue_for(redis_server.url)
    start = threading.Barrier(50)

    def publish_in_order(sender: int) -> None:
        start.wait(timeout=10)
        for n in range(20):
            queue._publish({"method": "emit", "sender": sender, "n": n, "text": "é🙂"})

    with subscriber(redis_server) as pubsub:
        connections_before = connections_received(redis_server)
        threads = [threading.Thread(target=publish_in_order, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        got = received(pubsub, 1000)

    assert len(got) == 1000
    for sender in range(50):
        assert [m["n"] for m in got if m["sender"] == sender] == list(range(20))
    assert got[0]["text"] == "é🙂"
    # 50 callers at once, one publisher connection (the stock manager opens one per caller)
    assert connections_received(redis_server) - connections_before <= 2  # and info()'s own


def test_an_outage_is_dropped_and_logged_once_then_publishing_resumes(tmp_path, caplog):
    need(redis_binary() is not None, "redis-server is not installed")
    server = RedisServer(tmp_path)  # its port is chosen, nothing listens yet
    queue = queue_for(server.url)
    caplog.set_level(logging.WARNING, logger="app.realtime.queue")
    try:
        for n in range(5):
            queue._publish({"method": "emit", "n": n})
        wait_until(lambda: queue._failing_since_drop == 5, 10, "5 dropped messages")
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert errors[0].startswith("Redis message queue: cannot publish (ConnectionError")

        server.start()
        with subscriber(server) as pubsub:
            queue._publish({"method": "emit", "n": "after"})
            assert [m["n"] for m in received(pubsub, 1)] == ["after"]
        wait_until(
            lambda: any("publishing again; 5 messages were dropped" in r.getMessage()
                        for r in caplog.records),
            10,
            "the recovery line",
        )  # fmt: skip
    finally:
        server.kill()


def test_the_listener_tries_again_at_once_then_backs_off_to_two_seconds():
    assert [listen_backoff(n) for n in range(1, 8)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert listen_backoff(100) == 2.0
