"""Losing a worker under traffic: its clients reconnect through nginx elsewhere and lose nothing."""

from __future__ import annotations

import signal
import threading
import uuid

import pytest
import socketio

from cluster_helpers import (
    MESSAGE_LIMITS_OFF,
    Cluster,
    make_users,
    need_cluster_servers,
    sockets_on_workers,
)
from livechat import LiveSocket, wait_until

MESSAGES_PER_SENDER = 120


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The default cluster, but each sender posts 120 messages as fast as acks come back."""
    need_cluster_servers()
    running = Cluster(tmp_path_factory.mktemp("cluster"), env=MESSAGE_LIMITS_OFF)
    yield running
    running.stop()


class Sender(threading.Thread):
    """Posts numbered messages one after the other, each retried with its client_id until acked."""

    def __init__(self, sock: LiveSocket, room: int, count: int, progress: threading.Semaphore):
        super().__init__(daemon=True)
        self.sock, self.room, self.count, self.progress = sock, room, count, progress
        self.acked: dict[str, dict] = {}  # client_id -> ack
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(self.count):
                client_id = uuid.uuid4().hex
                self.acked[client_id] = self._send_until_acked(client_id, f"{self.name} {i}")
                self.progress.release()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _send_until_acked(self, client_id: str, text: str) -> dict:
        for _ in range(50):  # bounded: a reconnect takes a few attempts at most
            try:
                # after a reconnect, post only once the room is joined again
                self.sock.wait_until(lambda: self.sock.ready_to_post, 20, "a reconnect")
                ack = self.sock.send(self.room, text, client_id=client_id)
                if ack.get("ok"):
                    return ack
            except (socketio.exceptions.SocketIOError, TimeoutError):
                pass
            self.retries += 1
        raise AssertionError(f"{text} was never acked")


def test_sigkill_a_worker_under_traffic_loses_and_duplicates_nothing(cluster):
    users = make_users(cluster.url, 4, "fail")
    room = users[0].create_room(f"failover-{uuid.uuid4().hex[:6]}")
    options = {"reconnection": True, "resync": True}
    receivers = list(sockets_on_workers(users, room, wanted=3, **options).values())
    senders_by_worker = sockets_on_workers(users[::-1], room, wanted=3, **options)
    everyone = receivers + list(senders_by_worker.values())
    try:
        assert len(receivers) == 3 and len(senders_by_worker) == 3
        victim = receivers[0].worker
        progress = threading.Semaphore(0)
        senders = [
            Sender(s, room, MESSAGES_PER_SENDER, progress) for s in senders_by_worker.values()
        ]
        for sender in senders:
            sender.start()
        # under traffic: a few dozen messages are in when the worker dies
        for _ in range(40):
            assert progress.acquire(timeout=20), "senders made no progress"
        cluster.signal_worker(victim, signal.SIGKILL)
        for sender in senders:
            sender.join(timeout=90)
            assert not sender.is_alive(), "a sender hung"
            assert sender.error is None, sender.error

        # the victim's clients came back on another worker
        moved = [s for s in everyone if s.workers[0] == victim]
        assert moved, "nobody was on the killed worker"
        for sock in moved:
            sock.wait_until(lambda s=sock: s.resyncs > 0, 20, "a re-join after the kill")
            assert sock.worker != victim

        stored = users[0].all_messages(room)
        total = MESSAGES_PER_SENDER * len(senders)
        # every acked message stored exactly once, seq gap-free
        assert [m["seq"] for m in stored] == list(range(1, total + 1))
        acked_ids = {ack["id"] for sender in senders for ack in sender.acked.values()}
        assert acked_ids == {m["id"] for m in stored}
        assert len({m["client_id"] for m in stored}) == total

        # a last message: clients that missed a broadcast see the gap and re-join with since
        marker = receivers[-1].send(room, "marker")
        assert marker["ok"]
        want = {m["id"] for m in stored} | {marker["id"]}
        for sock in everyone:
            sock.wait_merged(room, want, timeout=30)
            shown = sock.merged(room)
            assert [m["seq"] for m in shown] == list(range(1, total + 2))
            # each connection got each broadcast at most once
            broadcast_ids = [m["id"] for m in sock.received]
            assert len(broadcast_ids) == len(set(broadcast_ids))
        assert wait_until(lambda: not cluster.worker_alive(victim), 10, "the victim's exit")
        assert "exited with code -9" in cluster.output()
    finally:
        for sock in everyone:
            sock.close()


def test_sigterm_disconnects_clients_and_they_reconnect_elsewhere(cluster):
    users = make_users(cluster.url, 2, "term")
    room = users[0].create_room(f"term-{uuid.uuid4().hex[:6]}")
    alive = [w["name"] for w in cluster.workers if cluster.worker_alive(w["name"])]
    options = {"reconnection": True, "resync": True}
    by_worker = sockets_on_workers(users, room, wanted=len(alive), **options)
    sockets = list(by_worker.values())
    try:
        assert len(by_worker) >= 2
        leaving, staying = sockets[0], sockets[1]
        victim = leaving.worker
        assert staying.send(room, "before")["ok"]
        cluster.signal_worker(victim, signal.SIGTERM)
        # the worker closes its connections at once rather than after the graceful timeout
        leaving.wait_until(lambda: leaving.resyncs > 0, 10, "a reconnect and re-join")
        assert leaving.worker != victim
        assert wait_until(lambda: not cluster.worker_alive(victim), 15, "the worker to exit")
        ack = staying.send(room, "after")
        leaving.wait_merged(room, {ack["id"]})
        assert [m["message"] for m in leaving.merged(room)] == ["before", "after"]
        wait_until(
            lambda: (
                f"worker {victim} (pid" in cluster.output()
                and "exited with code 0" in cluster.output()
            ),
            10,
            "the cluster to report the clean exit",
        )
    finally:
        for sock in sockets:
            sock.close()
