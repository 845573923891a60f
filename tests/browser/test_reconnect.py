"""Losing the connection: the page says so, comes back by itself, and catches up exactly."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from livechat import ChatUser


@pytest.fixture
def alice_and_bob_in_a_room(person):
    alice, bob = person("alice"), person("bob")
    alice.sign_up()
    bob.sign_up()
    room = alice.create_room(f"flaky {alice.username}")
    alice.enter_room(room)
    bob.enter_room(room)
    alice.type_and_send("before the cut")
    bob.expect_message("before the cut")
    return alice, bob, room


def assert_each_once_in_order(person_, texts: list[str]) -> None:
    expect(person_.page.locator("#messages li.msg")).to_have_count(len(texts))
    shown = person_.shown()
    assert sorted(m["text"] for m in shown) == sorted(texts)
    seqs = [m["seq"] for m in shown]
    assert seqs == list(range(1, len(texts) + 1))
    assert len({m["id"] for m in shown}) == len(texts)


def stored(person_, room: int) -> list[str]:
    user = ChatUser(person_.base_url, person_.username, "correct horse battery").login()
    return [m["message"] for m in user.all_messages(room)]


def test_a_page_that_goes_offline_gets_every_missed_message_once_and_sends_what_was_typed(
    alice_and_bob_in_a_room,
):
    alice, bob, room = alice_and_bob_in_a_room
    bob.context.set_offline(True)
    expect(bob.page.locator("#status")).to_have_attribute("data-state", "offline")

    missed = [f"missed {i}" for i in range(5)]
    for text in missed:
        alice.type_and_send(text)
    expect(alice.page.locator("#messages li.msg[data-state='sent']")).to_have_count(6)
    bob.type_and_send("typed while offline")
    typed = bob.page.locator("#outbox li.msg")
    expect(typed).to_have_attribute("data-state", "queued")
    bob.screenshot("chat-offline-desktop-en")
    # still cut off: nothing of what alice wrote got through
    expect(bob.page.locator("#status")).to_have_attribute("data-state", "offline")
    assert [m["text"] for m in bob.shown()] == ["before the cut"]

    bob.context.set_offline(False)
    bob.wait_online()
    everything = ["before the cut", *missed, "typed while offline"]
    assert_each_once_in_order(bob, everything)
    assert [m["text"] for m in bob.shown()][:6] == ["before the cut", *missed]
    expect(bob.page.locator("#outbox li")).to_have_count(0)
    alice.expect_message("typed while offline")
    assert_each_once_in_order(alice, everything)
    assert stored(alice, room) == everything


def test_pages_survive_a_server_restart_and_catch_up_from_the_database(
    alice_and_bob_in_a_room, embedded, base_url
):
    if base_url != embedded.url:
        pytest.skip("restarts the embedded server; the cluster variant kills a worker instead")
    alice, bob, room = alice_and_bob_in_a_room
    embedded.stop()
    for reader in (alice, bob):
        expect(reader.page.locator("#status")).to_have_attribute("data-state", "offline")
    bob.type_and_send("typed while the server was down")
    expect(bob.page.locator("#outbox li.msg")).to_have_attribute("data-state", "queued")
    # bob stays cut off a little longer, so alice's next messages are ones he misses
    bob.context.set_offline(True)

    embedded.start()
    alice.wait_online()
    for i in range(3):
        alice.type_and_send(f"after the restart {i}")
    expect(alice.page.locator("#messages li.msg[data-state='sent']")).to_have_count(4)

    bob.context.set_offline(False)
    bob.wait_online()
    everything = [
        "before the cut",
        *[f"after the restart {i}" for i in range(3)],
        "typed while the server was down",
    ]
    assert_each_once_in_order(bob, everything)
    alice.expect_message("typed while the server was down")
    assert_each_once_in_order(alice, everything)
    assert stored(alice, room) == everything


def test_a_message_whose_ack_is_lost_fails_visibly_and_its_retry_is_stored_once(person, base_url):
    alice = person("alice")
    alice.sign_up()
    room = alice.create_room(f"lossy {alice.username}")
    # sit between the page and the server and lose the first reply about one message:
    # its ack and its broadcast back to this page (the server did store it)
    lost: dict[str, str] = {}
    dropped: list[str] = []

    def relay(ws):
        server = ws.connect_to_server()

        def from_page(frame):
            event = re.match(r'^42(\d+)\["message",(.*)\]$', str(frame))
            if event and "lose me" in event.group(2) and not lost:
                lost["ack"] = event.group(1)
                lost["client_id"] = json.loads(event.group(2))["client_id"]
            server.send(frame)

        def from_server(frame):
            text = str(frame)
            if lost and lost["ack"] and text.startswith(f"43{lost['ack']}["):
                dropped.append("ack")
                lost["ack"] = ""
                return
            broadcast = text.startswith('42["message"') and lost.get("client_id", "-") in text
            if broadcast and "broadcast" not in dropped:
                dropped.append("broadcast")
                return
            ws.send(frame)

        ws.on_message(from_page)
        server.on_message(from_server)

    alice.page.route_web_socket(re.compile(r"/socket\.io/"), relay)
    page = alice.enter_room(room)
    alice.type_and_send("lose me")
    typed = page.locator("#outbox li.msg")
    expect(typed).to_have_attribute("data-state", "failed", timeout=20_000)
    assert dropped == ["broadcast", "ack"] or dropped == ["ack", "broadcast"]
    retry = typed.locator("button.retry")
    expect(retry).to_be_visible()
    alice.screenshot("chat-failed-desktop-en")
    retry.click()
    sent = page.locator("#messages li.msg")
    expect(sent).to_have_attribute("data-state", "sent")
    expect(page.locator("#outbox li")).to_have_count(0)
    assert [(m["text"], m["seq"]) for m in alice.shown()] == [("lose me", 1)]
    assert stored(alice, room) == ["lose me"]
    # the client_id was the same both times: one row, and a reload shows it once
    page.reload()
    alice.wait_online()
    expect(page.locator("#messages li.msg")).to_have_count(1)


def test_the_page_falls_back_to_long_polling_when_websocket_is_blocked(person):
    alice = person("alice")
    alice.sign_up()
    room = alice.create_room(f"proxy {alice.username}")
    # as behind a proxy that refuses the upgrade: every WebSocket handshake gets a 404
    alice.page.add_init_script(
        """window.WebSocket = class extends WebSocket {
            constructor(url, protocols) {
                super(String(url).replace('/socket.io/', '/no-ws/'), protocols);
            }
        };"""
    )
    page = alice.enter_room(room)
    alice.type_and_send("over long-polling")
    expect(page.locator("#messages li.msg")).to_have_attribute("data-state", "sent")
    assert page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".some(e => e.name.includes('transport=polling'))"
    )
