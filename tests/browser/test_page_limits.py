"""The room page under the message limit: refused messages wait and go out by themselves."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from livechat import ChatUser

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def embedded_env():
    # one message at once per connection, then one every 0.5 s: typing fast meets it
    return {"RATE_LIMIT_MESSAGE_CONNECTION": "1/0.5s"}


def test_messages_typed_faster_than_the_limit_are_sent_in_order_once_each(person, base_url):
    alice = person("alice")
    alice.sign_up()
    room = alice.create_room(f"fast {alice.username}")
    page = alice.enter_room(room)
    texts = [f"quick {i}" for i in range(4)]
    for text in texts:
        alice.type_and_send(text)
    messages = page.locator("#messages li.msg")
    expect(messages).to_have_count(4)
    for i in range(4):
        expect(messages.nth(i)).to_have_attribute("data-state", "sent")
    assert [m["text"] for m in alice.shown()] == texts
    stored = ChatUser(base_url, alice.username, PASSWORD).login().all_messages(room)
    assert [m["message"] for m in stored] == texts
    assert alice.errors == []
