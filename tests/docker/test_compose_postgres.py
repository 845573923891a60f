"""The compose stack's `postgres` profile: the replicas share a PostgreSQL service."""

from __future__ import annotations

import uuid

import pytest
import requests

from compose_helpers import ComposeStack
from livechat import ChatUser

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# what .env.example's commented lines switch on, with a password of this run
PASSWORD = uuid.uuid4().hex
POSTGRES_ENV = {
    "COMPOSE_PROFILES": "postgres",
    "POSTGRES_PASSWORD": PASSWORD,
    "DATABASE_URL": f"postgresql+psycopg://flaskchat:{PASSWORD}@postgres:5432/flaskchat",
}


@pytest.fixture(scope="module")
def pg_stack(compose_env):
    running = ComposeStack(compose_env, replicas=2, extra_env=POSTGRES_ENV)
    try:
        running.up()
        yield running
    finally:
        if running.container_ids():
            print(running.logs())
        running.down()


def test_the_postgres_profile_serves_chat_from_both_replicas(pg_stack):
    [postgres] = pg_stack.container_ids("postgres")
    pg_stack.wait_healthy(postgres)
    for container in pg_stack.container_ids("app"):
        pg_stack.wait_healthy(container)
        env = pg_stack.inspect(container)["Config"]["Env"]
        assert f"DATABASE_URL={POSTGRES_ENV['DATABASE_URL']}" in env
    assert requests.get(f"{pg_stack.url}/healthz", timeout=10).status_code == 200

    alice = ChatUser(pg_stack.url, f"pg-{uuid.uuid4().hex[:6]}").signup()
    alice.login()
    room = alice.create_room("on postgres")
    sockets = []
    try:
        for _ in range(40):  # bounded: until two sockets are on different containers
            sockets.append(alice.socket())
            sockets[-1].join(room)
            if len({s.worker for s in sockets}) == 2:
                break
        first, second = sockets[0], next(s for s in sockets if s.worker != sockets[0].worker)
        ack = first.send(room, "stored in PostgreSQL")
        assert ack["ok"], ack
        second.wait_for_seq(room, ack["seq"], timeout=10)
        assert [m["message"] for m in alice.all_messages(room)] == ["stored in PostgreSQL"]
    finally:
        for sock in sockets:
            sock.close()

    # the data is in the postgres service, not in the SQLite volume
    rows = pg_stack.compose(
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        "flaskchat",
        "-d",
        "flaskchat",
        "-tAc",
        "SELECT count(*) FROM messages",
    ).stdout.strip()
    assert rows == "1"


def test_down_removes_the_postgres_volume_too(pg_stack):
    pg_stack.down()
    assert pg_stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
