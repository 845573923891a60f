"""The main flow through nginx and three workers: two people served by different workers."""

import pytest
from playwright.sync_api import expect

from cluster_helpers import Cluster, need_cluster_servers


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """nginx in front of 3 gunicorn/gevent workers sharing Redis (overrides the embedded one)."""
    need_cluster_servers()
    cluster = Cluster(tmp_path_factory.mktemp("browser-cluster"), workers=3)
    try:
        yield cluster.url
    finally:
        cluster.stop()


def test_two_people_on_different_workers_chat_live_through_nginx(person):
    alice, bob = person("alice"), person("bob")
    alice.sign_up()
    bob.sign_up()
    room = alice.create_room(f"cluster tea {alice.username}")

    alice.use_affinity("alice-tab")
    alice.enter_room(room)
    # each tab's affinity key picks its worker: bob opens new tabs until he lands elsewhere
    for attempt in range(12):
        bob.use_affinity(f"bob-tab-{attempt}")
        bob.enter_room(room)
        if bob.worker() != alice.worker():
            break
    assert alice.worker() and bob.worker()
    assert bob.worker() != alice.worker()

    alice.type_and_send("hello from one worker")
    bob.expect_message("hello from one worker")
    bob.type_and_send("hello back from another")
    alice.expect_message("hello back from another")
    for me in (alice, bob):
        expect(me.page.locator("#messages li.msg")).to_have_count(2)
        assert [m["seq"] for m in me.shown()] == [1, 2]

    # a reload (maybe on yet another worker) shows the stored history once, in order
    bob.page.reload()
    bob.wait_online()
    expect(bob.page.locator("#messages li.msg")).to_have_count(2)
    assert [m["text"] for m in bob.shown()] == ["hello from one worker", "hello back from another"]
    assert not alice.errors and not bob.errors
