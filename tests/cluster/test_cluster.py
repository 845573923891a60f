"""3 gunicorn workers behind nginx with the cluster's own Redis: spread, fan-out, polling."""

from __future__ import annotations

import base64
import http.client
import json
import os
import urllib.parse
import uuid

import redis
import requests

from cluster_helpers import SOCKETIO_CHANNEL, make_users, sockets_on_workers
from livechat import wait_until


def test_every_worker_answers_and_is_ready(cluster):
    names = set()
    for worker in cluster.workers:
        health = requests.get(cluster.worker_url(worker["name"]) + "/healthz", timeout=5).json()
        ready = requests.get(cluster.worker_url(worker["name"]) + "/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        names.add(health["worker"])
    assert names == {"w1", "w2", "w3"}
    # and through nginx
    assert requests.get(cluster.url + "/readyz", timeout=5).json()["ok"] is True


def test_nginx_serves_the_static_files_itself(cluster):
    response = requests.get(cluster.url + "/static/vendor/socket.io.min.js", timeout=5)
    assert response.status_code == 200 and response.headers["Server"].startswith("nginx")
    assert "Expires" in response.headers  # set by nginx's location, not by Flask
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_through_nginx_carry_the_security_headers(cluster):
    page = requests.get(cluster.url + "/", timeout=5)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in page.headers["Cache-Control"]
    # nginx says the request came over plain HTTP: no HSTS, whatever the client claims
    forged = requests.get(cluster.url + "/", headers={"X-Forwarded-Proto": "https"}, timeout=5)
    assert "Strict-Transport-Security" not in forged.headers


def test_clients_from_one_address_spread_over_workers(cluster):
    (alice,) = make_users(cluster.url, 1, "spread")
    room = alice.create_room(f"spread-{uuid.uuid4().hex[:6]}")
    sockets = [alice.socket() for _ in range(12)]
    try:
        workers = {s.join(room)["worker"] for s in sockets}
        # 12 random affinity keys over 3 workers: all on one would be a 1 in 177,147 chance
        assert len(workers) >= 2, workers
        assert workers <= {"w1", "w2", "w3"}
    finally:
        for s in sockets:
            s.close()


def test_a_message_from_one_worker_reaches_the_others_exactly_once(cluster):
    users = make_users(cluster.url, 3, "fan")
    room = users[0].create_room(f"fan-{uuid.uuid4().hex[:6]}")
    by_worker = sockets_on_workers(users, room, wanted=3)
    sockets = list(by_worker.values())
    try:
        assert len(by_worker) == 3, sorted(by_worker)
        subscribers = redis.Redis.from_url(cluster.state["redis_url"]).pubsub_numsub(
            SOCKETIO_CHANNEL
        )
        assert dict(subscribers)[SOCKETIO_CHANNEL.encode()] == 3  # one listener per worker
        acks = [s.send(room, f"from {worker}") for worker, s in by_worker.items()]
        assert all(a["ok"] for a in acks)
        # a last message as a marker: whatever came twice before it is in by then
        last = sockets[0].send(room, "marker")["seq"]
        for s in sockets:
            s.wait_for_seq(room, last)
        for s in sockets:
            assert sorted(s.seqs(room)) == [1, 2, 3, 4], (s.worker, s.seqs(room))
        stored = users[0].all_messages(room)
        assert [m["seq"] for m in stored] == [1, 2, 3, 4]
        assert sorted(m["message"] for m in stored[:3]) == sorted(f"from {w}" for w in by_worker)
    finally:
        for s in sockets:
            s.close()


def test_long_polling_works_through_nginx(cluster):
    users = make_users(cluster.url, 2, "poll")
    room = users[0].create_room(f"poll-{uuid.uuid4().hex[:6]}")
    by_worker = sockets_on_workers(users, room, wanted=2, transports=["polling"])
    sockets = list(by_worker.values())
    try:
        assert len(by_worker) == 2
        for s in sockets:
            assert s.client.transport() == "polling"
        # many round trips, each a new HTTP request that nginx must send to the same worker
        for i in range(10):
            assert sockets[i % 2].send(room, f"poll {i}")["ok"]
        for s in sockets:
            s.wait_for_seq(room, 10)
            assert sorted(s.seqs(room)) == list(range(1, 11))
            # an "Invalid session" 400 would have dropped the connection
            assert s.client.connected and s.connects == 1
        assert {s.worker for s in sockets} == set(by_worker)
    finally:
        for s in sockets:
            s.close()


def test_a_foreign_origin_is_refused_through_nginx(cluster):
    (alice,) = make_users(cluster.url, 1, "origin")
    # the site itself: accepted (websocket-client adds its own Origin, so polling here; every
    # WebSocket test passes through nginx with that default same-site Origin)
    own = alice.socket(origin=cluster.url, transports=["polling"])
    own.close()
    response = alice.http.get(
        cluster.url + "/socket.io/",
        params={"EIO": "4", "transport": "polling", "affinity": "x"},
        headers={"Origin": "http://evil.invalid"},
        timeout=5,
    )
    assert response.status_code == 400
    # nginx replaces a client's X-Forwarded-Host with the Host it was reached at
    forged = alice.http.get(
        cluster.url + "/socket.io/",
        params={"EIO": "4", "transport": "polling", "affinity": "x"},
        headers={"Origin": "http://evil.invalid", "X-Forwarded-Host": "evil.invalid"},
        timeout=5,
    )
    assert forged.status_code == 400


def _websocket_handshake(url: str, cookie: str) -> dict[str, str]:
    """A raw WebSocket upgrade offering permessage-deflate, as browsers do; the 101 headers."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        conn.request(
            "GET",
            "/socket.io/?EIO=4&transport=websocket&affinity=deflate-check",
            headers={
                "Cookie": cookie,
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
            },
        )
        response = conn.getresponse()
        assert response.status == 101, response.status
        return {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def test_nginx_keeps_websocket_compression_off(cluster):
    (alice,) = make_users(cluster.url, 1, "deflate")
    # straight to a worker, the offer is accepted: the check below is not vacuous
    direct = _websocket_handshake(cluster.worker_url("w1"), alice.cookie_header())
    assert "permessage-deflate" in direct.get("sec-websocket-extensions", "")
    through_nginx = _websocket_handshake(cluster.url, alice.cookie_header())
    assert "sec-websocket-extensions" not in through_nginx


def test_workers_log_json_lines_with_their_id(cluster):
    (alice,) = make_users(cluster.url, 1, "logs")
    # a bad Origin makes every worker log an error line; hit each one directly
    for worker in cluster.workers:
        alice.http.get(
            cluster.worker_url(worker["name"]) + "/socket.io/",
            params={"EIO": "4", "transport": "polling"},
            headers={"Origin": "http://evil.invalid"},
            timeout=5,
        )
    names = {w["name"] for w in cluster.workers}

    def logged() -> set[str]:
        seen = set()
        for line in cluster.output().splitlines():
            if line.startswith("{") and '"worker"' in line:
                entry = json.loads(line)
                if entry.get("worker") in names and "level" in entry:
                    seen.add(entry["worker"])
        return seen

    wait_until(lambda: logged() == names, 10, "a JSON log line from every worker")


def test_redis_carries_broadcasts_as_utf8(cluster):
    users = make_users(cluster.url, 2, "utf8")
    room = users[0].create_room(f"utf8-{uuid.uuid4().hex[:6]}")
    pubsub = redis.Redis.from_url(cluster.state["redis_url"]).pubsub()
    pubsub.subscribe(SOCKETIO_CHANNEL)
    sender, receiver = users[0].socket(), users[1].socket()
    text = "😀 São Paulo שלום"
    try:
        sender.join(room)
        receiver.join(room)
        assert sender.send(room, text)["ok"]
        receiver.wait_for_seq(room, 1)
        assert receiver.received[0]["message"] == text

        def published():
            message = pubsub.get_message(timeout=0.2)
            while message is not None:
                if message["type"] == "message" and b'"message"' in message["data"]:
                    return message["data"]
                message = pubsub.get_message(timeout=0.2)
            return None

        payload = wait_until(published, 10, "the broadcast on the Redis channel")
        assert text.encode() in payload and b"\\u" not in payload
    finally:
        pubsub.close()
        sender.close()
        receiver.close()


def test_a_storm_of_one_users_joins_on_every_worker_makes_one_notice(cluster):
    users = make_users(cluster.url, 3, "notice")
    alice, bob, carol = users
    room = alice.create_room(f"notice-{uuid.uuid4().hex[:6]}")
    watcher = bob.socket()
    watcher.join(room)
    # alice on every worker (the coalescing is shared through Redis)
    by_worker = sockets_on_workers([alice], room, wanted=3)
    sockets = list(by_worker.values())
    marker = carol.socket()
    try:
        assert len(by_worker) >= 2, sorted(by_worker)
        for _ in range(3):
            for sock in sockets:
                assert sock.call("leave", {"room": room}) == {"ok": True}
            for sock in sockets:
                sock.join(room)
        marker.join(room)
        watcher.wait_until(
            lambda: any(n["username"] == carol.username for n in watcher.notices),
            10,
            "carol's join notice",
        )
        from_alice = [n for n in watcher.notices if n["username"] == alice.username]
        # one per NOTICE_INTERVAL (5 s) on all workers together; a slow run may see a second
        assert 1 <= len(from_alice) <= 2, from_alice
    finally:
        for sock in [watcher, marker, *sockets]:
            sock.close()
