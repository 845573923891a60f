"""The account page in the real browser: both languages, phone and desktop, and an open room
that goes "signed out" when the session is ended from another browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from test_pages import check_language

PASSWORD = "correct horse battery"  # the browser conftest's


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_the_account_page_in_both_languages(person, lang, viewport):
    me = person("acc", locale=lang, viewport=viewport)
    me.sign_up()
    other = person("acc", locale=lang)
    other.username = me.username
    other.log_in()

    page = me.page
    page.locator("a.account-link").click()  # the header links to it
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.locator(".session-item")).to_have_count(2)
    check_language(me, lang, "account")
    # nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    me.screenshot(f"account-{viewport}-{lang}")

    page.locator("#current_password").fill("not it at all")
    page.locator("#new_password").fill("short")
    page.locator("#confirm_password").fill("short")
    page.locator("form[action$='/account/password'] button[type=submit]").click()
    for field in ("current_password", "new_password"):
        expect(page.locator(f"#{field}-error")).to_be_visible()
        expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
    check_language(me, lang, "account-errors")
    me.screenshot(f"account-errors-{viewport}-{lang}")

    page.locator("#current_password").fill(PASSWORD)
    page.locator("#new_password").fill("a brand new secret")
    page.locator("#confirm_password").fill("a brand new secret")
    page.locator("form[action$='/account/password'] button[type=submit]").click()
    expect(page.locator(".flash")).to_be_visible()
    expect(page.locator(".session-item")).to_have_count(1)
    other.goto("/dashboard")
    expect(other.page).to_have_url(re.compile(r"/$"))

    me.goto("/logout")
    check_language(me, lang, "logout")
    me.screenshot(f"logout-{viewport}-{lang}")
    assert not me.errors, me.errors


def test_an_open_room_is_signed_out_when_the_session_ends_elsewhere(person):
    me = person("room")
    me.sign_up()
    room = me.create_room(f"ends {me.username}")
    me.wait_online()
    elsewhere = person("room")
    elsewhere.username = me.username
    elsewhere.log_in()
    elsewhere.goto("/account")
    elsewhere.page.locator("form[action$='/account/logout-everywhere'] button").click()
    expect(elsewhere.page).to_have_url(re.compile(r"/$"))
    # the room's socket is closed by the server and cannot come back with that cookie
    expect(me.page.locator("#status")).to_have_attribute("data-state", "signedOut")
    assert me.page.url.endswith(f"/chat/{room}")
    assert not me.errors, me.errors
