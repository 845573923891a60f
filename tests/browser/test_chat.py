"""Two people in two browsers: the whole flow through the real pages, then the room page's rules."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from livechat import ChatUser

XSS = "<img src=x onerror=alert(1)>"


def test_two_people_sign_up_create_a_room_and_chat_live_both_ways(person, base_url):
    alice, bob = person("alice"), person("bob")
    alice.sign_up()
    bob.sign_up()
    # bob logs out and back in through the login form
    bob.log_out()
    bob.log_in()

    room = alice.create_room(f"tea {alice.username}")
    alice.enter_room(room)
    bob.enter_room(room)
    expect(alice.page.locator("#messages li.notice")).to_have_text(f"{bob.username} joined")
    # the cluster variant asserts the two differ; here it only has to be reported
    assert alice.worker() and bob.worker()

    alice.type_and_send("hello bob")
    bob.expect_message("hello bob")
    bob.type_and_send("hi alice, how are you?")
    alice.expect_message("hi alice, how are you?")
    alice.type_and_send("fine!")
    bob.expect_message("fine!")

    for me, other in ((alice, bob), (bob, alice)):
        expect(me.page.locator("#messages li.msg")).to_have_count(3)
        shown = me.shown()
        assert [m["text"] for m in shown] == ["hello bob", "hi alice, how are you?", "fine!"]
        assert [m["seq"] for m in shown] == [1, 2, 3]
        assert len({m["id"] for m in shown}) == 3
        # own messages stand apart and are acknowledged; the others carry their author's name
        assert [m["mine"] for m in shown] == (
            [True, False, True] if me is alice else [False, True, False]
        )
        assert all(m["author"] == other.username for m in shown if not m["mine"])
        expect(me.page.locator("#messages li.mine[data-state='sent']")).to_have_count(
            2 if me is alice else 1
        )

    # reloading shows the stored history, in order, once
    bob.page.reload()
    bob.wait_online()
    expect(bob.page.locator("#messages li.msg")).to_have_count(3)
    assert [m["text"] for m in bob.shown()] == ["hello bob", "hi alice, how are you?", "fine!"]
    # bob walks out: alice is told
    bob.goto("/dashboard")
    expect(alice.page.locator("#messages li.notice").last).to_have_text(f"{bob.username} left")
    assert not alice.errors and not bob.errors


def test_times_are_shown_in_the_readers_own_time_zone(person):
    ana = person("ana", locale="pt-BR", timezone="America/Sao_Paulo")
    ana.sign_up()
    room = ana.create_room(f"fuso {ana.username}")
    ana.enter_room(room)
    ana.type_and_send("que horas são?")
    time = ana.page.locator("#messages li.msg time")
    expect(time).to_have_count(1)
    stamp = datetime.fromisoformat(time.get_attribute("datetime").replace("Z", "+00:00"))
    local = stamp.astimezone(ZoneInfo("America/Sao_Paulo"))
    assert time.text_content() == local.strftime("%H:%M")


def test_the_xss_payload_shows_as_text_and_runs_nothing(person):
    alice, bob = person("alice"), person("bob")
    alice.sign_up()
    bob.sign_up()
    room = alice.create_room(f"xss {alice.username}")
    alice.enter_room(room)
    bob.enter_room(room)

    alice.type_and_send(XSS)
    for reader in (alice, bob):
        bubble = reader.page.locator("#messages li.msg .bubble")
        expect(bubble).to_have_text(XSS)
        expect(reader.page.locator("#messages img")).to_have_count(0)
    # and after a reload, rendered from the stored history
    bob.page.reload()
    bob.wait_online()
    expect(bob.page.locator("#messages li.msg .bubble")).to_have_text(XSS)
    expect(bob.page.locator("#messages img")).to_have_count(0)
    # a later message proves the page kept working; no dialog ever opened
    alice.type_and_send("still here")
    bob.expect_message("still here")
    assert alice.dialogs == [] and bob.dialogs == []


def test_only_http_links_are_clickable_and_they_do_not_hand_over_the_page(person):
    alice = person("alice")
    alice.sign_up()
    alice.enter_room(alice.create_room(f"links {alice.username}"))
    alice.type_and_send("see https://example.com/a?b=1. or javascript:alert(1) or ftp://x.test/f")
    bubble = alice.page.locator("#messages li.msg .bubble")
    expect(bubble).to_have_text(
        "see https://example.com/a?b=1. or javascript:alert(1) or ftp://x.test/f"
    )
    links = bubble.locator("a")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://example.com/a?b=1")
    expect(links).to_have_attribute("rel", "noopener noreferrer")


def test_enter_sends_shift_enter_adds_a_line_and_the_limit_shows_before_sending(person):
    alice = person("alice")
    alice.sign_up()
    room = alice.create_room(f"keys {alice.username}")
    page = alice.enter_room(room)
    box = page.locator("#text")
    box.click()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.msg .bubble")).to_have_text("first line\nsecond line")
    expect(page.locator("#messages li.msg")).to_have_attribute("data-state", "sent")
    expect(box).to_have_value("")

    limit = int(page.locator("#chat").get_attribute("data-max-length"))
    box.fill("x" * (limit + 3))
    expect(page.locator("#counter")).to_have_text(re.compile(r"\b3\b"))
    expect(page.locator("#counter")).to_have_class(re.compile(r"\bover\b"))
    expect(page.locator("#send button[type=submit]")).to_be_disabled()
    box.press("Enter")
    box.fill("x" * limit)  # exactly the limit is fine
    expect(page.locator("#send button[type=submit]")).to_be_enabled()
    box.press("Enter")
    expect(page.locator("#messages li.msg")).to_have_count(2)
    expect(page.locator("#messages li.msg").last).to_have_attribute("data-state", "sent")
    # nothing too long reached the server: two messages stored, the second exactly at the limit
    user = ChatUser(alice.base_url, alice.username, "correct horse battery").login()
    stored = user.all_messages(room)
    assert [len(m["message"]) for m in stored] == [len("first line\nsecond line"), limit]


def test_new_messages_do_not_pull_a_reader_who_scrolled_up(person, base_url):
    alice, bob = person("alice"), person("bob")
    alice.sign_up()
    bob.sign_up()
    room = alice.create_room(f"busy {alice.username}")
    account = ChatUser(base_url, alice.username, "correct horse battery").login()
    # the history from one socket, the live messages from another: 40 posts use up one
    # connection's burst (message.connection, 40/20s) and the next would be rate_limited
    filler, sender = account.socket(), account.socket()
    try:
        filler.join(room)
        sender.join(room)
        for i in range(40):
            assert filler.send(room, f"filler {i}")["ok"]
        page = bob.enter_room(room)
        expect(page.locator("#messages li.msg")).to_have_count(40)
        scroller = page.locator("#scroller")
        scroller.evaluate("el => el.scrollTop = el.scrollHeight / 2")
        assert sender.send(room, "while bob reads")["ok"]
        bob.expect_message("while bob reads")
        jump = page.locator("#jump")
        expect(jump).to_be_visible()
        assert scroller.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") > 100
        jump.click()
        expect(jump).to_be_hidden()
        # at the bottom, the next message scrolls into view by itself
        assert sender.send(room, "now at the bottom")["ok"]
        bob.expect_message("now at the bottom")
        expect(page.locator("#messages li.msg").last).to_be_in_viewport()
        expect(jump).to_be_hidden()
    finally:
        filler.close()
        sender.close()


def test_each_tab_keeps_one_affinity_key_in_its_socket_io_query(person):
    alice = person("alice")
    alice.sign_up()
    room = alice.create_room(f"sticky {alice.username}")
    # create_room lands on the room page, whose socket may open after the listener below:
    # leave it first, so the listener sees exactly the two room visits that follow
    alice.goto("/dashboard")
    urls: list[str] = []
    alice.page.on("websocket", lambda ws: urls.append(ws.url))
    alice.enter_room(room)
    alice.page.reload()
    alice.wait_online()
    keys = [re.search(r"[?&]affinity=([^&]+)", url).group(1) for url in urls]
    assert len(keys) == 2 and keys[0] == keys[1]
    # a pinned key (how a cluster test puts two people on chosen workers) is the one sent
    alice.use_affinity("pinned-key-1")
    alice.page.reload()
    alice.wait_online()
    assert "affinity=pinned-key-1" in urls[-1]
