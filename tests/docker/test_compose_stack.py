"""The docker-compose stack on a real engine: nginx, 2 app replicas, Redis, SQLite volume.

The tests run in file order on one stack; the last one takes it down and checks that
nothing of the project is left.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import requests

from compose_helpers import docker
from livechat import ChatUser, LiveSocket, wait_until

# the first test also pays for building the images (cached after the first run)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def make_users(base_url: str, count: int, prefix: str) -> list[ChatUser]:
    suffix = uuid.uuid4().hex[:6]
    return [ChatUser(base_url, f"{prefix}{i}-{suffix}").signup() for i in range(count)]


def sockets_on_two_replicas(users: list[ChatUser], room: int, **options) -> list[LiveSocket]:
    """Two joined sockets that nginx sent to different app containers (bounded attempts)."""
    by_worker: dict[str, LiveSocket] = {}
    extra = []
    for attempt in range(40):
        sock = users[attempt % len(users)].socket(**options)
        sock.join(room)
        if sock.worker in by_worker:
            extra.append(sock)
        else:
            by_worker[sock.worker] = sock
        if len(by_worker) == 2:
            break
    for sock in extra:
        sock.close()
    assert len(by_worker) == 2, f"40 sockets all landed on {list(by_worker)}"
    return list(by_worker.values())


def test_the_stack_runs_replicas_behind_nginx(stack):
    apps = stack.container_ids("app")
    assert len(apps) == 2
    for container in apps:
        stack.wait_healthy(container)
        info = stack.inspect(container)
        assert info["Config"]["User"] == "flaskchat"
        assert info["NetworkSettings"]["Ports"] == {"8000/tcp": None}  # no host port
    redis = stack.inspect(stack.container_ids("redis")[0])
    assert redis["NetworkSettings"]["Ports"] == {"6379/tcp": None}
    assert stack.container_ids("postgres") == []  # only with the postgres profile

    health = requests.get(f"{stack.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["ok"]
    # nginx serves the browser assets from its own image
    asset = requests.get(f"{stack.url}/static/vendor/socket.io.min.js", timeout=10)
    assert asset.status_code == 200 and "io" in asset.text[:2000]
    assert asset.headers.get("Expires")  # nginx's `expires 1h`, not the app
    assert asset.headers["X-Content-Type-Options"] == "nosniff"
    page = requests.get(f"{stack.url}/", timeout=10)
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "no-store" in page.headers["Cache-Control"]


def test_redis_refuses_clients_without_the_password(stack):
    """From inside the stack's network (an app container), as any other container would."""
    [app, *_] = stack.container_ids("app")
    probe = (
        "import redis\n"
        "try:\n"
        "    redis.Redis(host='redis', socket_timeout=5).ping()\n"
        "    print('answered')\n"
        "except redis.AuthenticationError as exc:\n"
        "    print('refused', exc)\n"
    )
    assert docker("exec", app, "python", "-c", probe).startswith("refused")
    # the app itself uses the password (its REDIS_URL) and is ready
    ready = requests.get(f"{stack.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"


def test_the_sqlite_file_and_data_folder_are_private(stack):
    [app, *_] = stack.container_ids("app")
    modes = docker("exec", app, "stat", "-c", "%a %U %n", "/data", "/data/flask-chat.db")
    assert modes.split("\n")[:2] == ["700 flaskchat /data", "600 flaskchat /data/flask-chat.db"]


def test_sign_up_log_in_and_chat_across_replicas(stack):
    alice, bob = make_users(stack.url, 2, "dock")
    alice.login()
    bob.login()
    room = alice.create_room(f"docker-{uuid.uuid4().hex[:6]}")
    first, second = sockets_on_two_replicas([alice, bob], room)
    try:
        assert first.worker != second.worker
        hello = first.send(room, "hello from one container")
        assert hello["ok"], hello
        second.wait_for_seq(room, hello["seq"], timeout=10)
        reply = second.send(room, "and back from the other")
        assert reply["ok"], reply
        first.wait_for_seq(room, reply["seq"], timeout=10)
        for sock in (first, second):
            texts = [m["message"] for m in sock.received if m["room"] == room]
            # exactly once each, through Redis, in order
            assert texts == ["hello from one container", "and back from the other"]
        assert [m["message"] for m in alice.all_messages(room)] == texts
    finally:
        first.close()
        second.close()


def test_restarting_an_app_container_loses_nothing(stack):
    users = make_users(stack.url, 2, "rst")
    room = users[0].create_room(f"restart-{uuid.uuid4().hex[:6]}")
    receiver, sender = sockets_on_two_replicas(users, room, reconnection=True, resync=True)
    victim = stack.container_of_worker(receiver.worker)
    acked: list[dict] = []
    try:
        for i in range(5):
            acked.append(sender.send(room, f"before {i}"))
        receiver.wait_merged(room, {a["id"] for a in acked})

        # only the receiver's container restarts; docker stop sends SIGTERM to gunicorn
        restart_one = threading.Thread(
            target=docker, args=("restart", "-t", "20", victim), daemon=True
        )
        restart_one.start()
        # the receiver is dropped (SIGTERM drains) ...
        receiver.wait_until(lambda: receiver.disconnects >= 1, 30, "the receiver to be dropped")
        # ... while the sender, on the other replica, keeps posting
        for i in range(10):
            ack = sender.send(room, f"during {i}")
            assert ack["ok"], ack
            acked.append(ack)
        restart_one.join(timeout=60)
        assert not restart_one.is_alive(), "docker restart did not finish in 60 s"
        stack.wait_healthy(victim)

        # it reconnects through nginx and resyncs with `since`
        receiver.wait_until(lambda: receiver.ready_to_post, 60, "the receiver to resync")
        for i in range(3):
            ack = sender.send(room, f"after {i}")
            assert ack["ok"], ack
            acked.append(ack)
        ids = {a["id"] for a in acked}
        receiver.wait_merged(room, ids, timeout=30)

        shown = receiver.merged(room)
        assert [m["id"] for m in shown] == sorted(ids)
        assert [m["seq"] for m in shown] == list(range(1, len(ids) + 1))
        assert receiver.connects >= 2 and receiver.resyncs >= 1
        stored = users[0].all_messages(room)
        assert [m["id"] for m in stored] == sorted(ids)  # stored once each
    finally:
        receiver.close()
        sender.close()


def test_down_removes_containers_networks_and_volumes(stack):
    assert stack.leftovers()["volumes"], "the stack should have its data volume before down"
    # anonymous volumes (an image's VOLUME, e.g. redis's /data) carry no project label
    mounted = {
        mount["Name"]
        for container in stack.container_ids()
        for mount in stack.inspect(container)["Mounts"]
        if mount["Type"] == "volume"
    }
    assert mounted
    stack.down()
    left = stack.leftovers()
    assert left == {"containers": [], "networks": [], "volumes": []}, left
    assert set(docker("volume", "ls", "-q").split()).isdisjoint(mounted)
    wait_until(lambda: not _answers(stack.url), 10, "nginx's port to close")


def _answers(url: str) -> bool:
    try:
        requests.get(f"{url}/healthz", timeout=1)
    except requests.RequestException:
        return False
    return True
