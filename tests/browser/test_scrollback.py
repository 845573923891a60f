"""Scrollback: a long room loads older pages as the reader scrolls up, with no gap and no repeat."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from cluster_helpers import MESSAGE_LIMITS_OFF
from livechat import ChatUser

TOTAL = 300


@pytest.fixture(scope="module")
def embedded_env():
    # the room is filled with 300 messages from one socket as fast as acks come back
    return MESSAGE_LIMITS_OFF


def test_scrolling_up_loads_every_older_message_once_and_keeps_the_reading_position(
    person, base_url
):
    reader = person("reader")
    reader.sign_up()
    room = reader.create_room(f"long {reader.username}")
    writer = ChatUser(base_url, f"w{reader.username}").signup().socket()
    try:
        writer.join(room)
        for i in range(1, TOTAL + 1):
            assert writer.send(room, f"message number {i}")["ok"]
    finally:
        writer.close()

    page = reader.enter_room(room)
    messages = page.locator("#messages li.msg")
    expect(messages).to_have_count(50)
    expect(page.locator("#history-edge")).to_have_attribute("data-state", "more")
    # the newest is in view at the bottom
    expect(messages.last.locator(".bubble")).to_have_text(f"message number {TOTAL}")
    expect(messages.last).to_be_in_viewport()

    shown = 50
    while shown < TOTAL:
        # scroll to the top and note where the oldest loaded message sits on screen
        before = page.locator("#scroller").evaluate(
            """el => {
                el.scrollTop = 0;
                const first = document.querySelector('#messages li.msg');
                return {seq: first.dataset.seq, top: first.getBoundingClientRect().top};
            }"""
        )
        shown = min(TOTAL, shown + 50)
        expect(messages).to_have_count(shown)
        anchor = page.locator(f"#messages li.msg[data-seq='{before['seq']}']")
        # the message the reader was looking at did not move
        assert abs(anchor.evaluate("el => el.getBoundingClientRect().top") - before["top"]) < 2
        expect(anchor).to_be_in_viewport()

    expect(page.locator("#history-edge")).to_have_attribute("data-state", "beginning")
    seqs = [m["seq"] for m in reader.shown()]
    texts = [m["text"] for m in reader.shown()]
    assert seqs == list(range(1, TOTAL + 1))
    assert texts == [f"message number {i}" for i in range(1, TOTAL + 1)]
    assert len({m["id"] for m in reader.shown()}) == TOTAL
    assert not reader.errors
