"""Ending a login session closes its sockets on every worker, and limits hold across workers.

Each socket is opened on one worker directly and the HTTP request that ends the session goes
to another worker directly, so the disconnect has to cross Redis.
"""

from __future__ import annotations

import time
import uuid

import pytest

from cluster_helpers import Cluster, need_cluster_servers, post_form_to, socket_on
from livechat import ChatUser, connect_refusal, wait_until

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """3 workers, nginx, Redis; 4 sockets per user so a limit test fits in a few sockets."""
    need_cluster_servers()
    running = Cluster(tmp_path_factory.mktemp("sessions-cluster"), env={"SOCKETS_PER_USER": "4"})
    yield running
    running.stop()


def user(cluster, prefix: str) -> ChatUser:
    return ChatUser(cluster.url, f"{prefix}-{uuid.uuid4().hex[:8]}", PASSWORD).signup()


def post_via(cluster, worker: str, person: ChatUser, path: str, **data):
    return post_form_to(cluster.worker_url(worker), person, path, **data)


def refused_with(person: ChatUser, url: str) -> dict | None:
    return connect_refusal(url, person.cookie_header())


def test_logout_on_one_worker_closes_the_sockets_on_the_others(cluster):
    alice, bob = user(cluster, "alice"), user(cluster, "bob")
    room = bob.create_room(f"r-{uuid.uuid4().hex[:6]}")
    sockets = [socket_on(cluster, "w1", alice, room), socket_on(cluster, "w3", alice, room)]
    b = socket_on(cluster, "w2", bob, room)
    try:
        started = time.monotonic()
        assert post_via(cluster, "w2", alice, "/logout").status_code == 303
        for sock in sockets:
            sock.wait_closed_by_server(1.0)
        assert time.monotonic() - started < 1.5
        assert b.send(room, "after the logout")["ok"]
        b.wait_for_seq(room, 1)
        for sock in sockets:
            assert sock.received == []
        for worker in ("w1", "w2", "w3"):
            assert refused_with(alice, cluster.worker_url(worker)) == {"message": "unauthorized"}
    finally:
        for sock in [*sockets, b]:
            sock.close()


def test_a_password_change_on_one_worker_closes_only_the_other_sessions_sockets(cluster):
    here = user(cluster, "carol")
    there = ChatUser(cluster.url, here.username, PASSWORD).login()
    bob = user(cluster, "bob")
    room = bob.create_room(f"r-{uuid.uuid4().hex[:6]}")
    mine = socket_on(cluster, "w1", here, room)
    theirs = socket_on(cluster, "w3", there, room)
    b = socket_on(cluster, "w2", bob, room)
    try:
        response = post_via(
            cluster,
            "w2",
            here,
            "/account/password",
            current_password=PASSWORD,
            new_password="another fine secret",
            confirm_password="another fine secret",
        )
        assert response.status_code == 303
        theirs.wait_closed_by_server(1.0)
        assert b.send(room, "who is still here?")["ok"]
        mine.wait_for_seq(room, 1)
        assert mine.client.connected and theirs.received == []
    finally:
        for sock in (mine, theirs, b):
            sock.close()


def test_log_out_everywhere_on_one_worker_closes_every_socket_on_every_worker(cluster):
    here = user(cluster, "dave")
    there = ChatUser(cluster.url, here.username, PASSWORD).login()
    room = here.create_room(f"r-{uuid.uuid4().hex[:6]}")
    sockets = [
        socket_on(cluster, "w1", here, room),
        socket_on(cluster, "w2", here, room),
        socket_on(cluster, "w3", there, room),
    ]
    try:
        assert post_via(cluster, "w2", here, "/account/logout-everywhere").status_code == 303
        for sock in sockets:
            sock.wait_closed_by_server(1.0)
        assert refused_with(there, cluster.worker_url("w1")) == {"message": "unauthorized"}
    finally:
        for sock in sockets:
            sock.close()


def test_the_sockets_per_user_limit_counts_every_worker(cluster):
    erin = user(cluster, "erin")
    room = erin.create_room(f"r-{uuid.uuid4().hex[:6]}")
    sockets = [socket_on(cluster, w, erin, room) for w in ("w1", "w2", "w3", "w1")]
    try:
        for worker in ("w1", "w2", "w3"):
            refused = refused_with(erin, cluster.worker_url(worker))
            assert refused and refused["message"] == "too_many_connections", refused
            assert refused["data"]["scope"] == "user" and refused["data"]["limit"] == 4
        sockets.pop().close()  # one closes on w1: w3 may take it
        wait_until(
            lambda: refused_with(erin, cluster.worker_url("w3")) is None, 5, "the freed slot"
        )
    finally:
        for sock in sockets:
            sock.close()
