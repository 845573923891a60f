"""Every page in both languages, on a phone and a desktop: nothing untranslated, screenshots kept.

The screenshots go to artifacts/screenshots/<page>-<viewport>-<language>.png.
"""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import expect

from app.i18n import TRANSLATIONS_DIR
from livechat import ChatUser

# shown on purpose in their own language on every page: the switcher's labels
LANGUAGE_NAMES = ("English", "Português (Brasil)")
PLACEHOLDER = re.compile(r"%\\\(\w+\\\)[sd]|\\\{\w+\\\}")

VISIBLE_TEXT = """() => {
  const parts = [document.title, document.body.innerText];
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title], [alt]')) {
    for (const name of ['placeholder', 'aria-label', 'title', 'alt']) {
      const value = el.getAttribute(name);
      if (value) parts.push(value);
    }
  }
  return parts.join('\\n');
}"""


def _pattern(text: str) -> re.Pattern:
    body = PLACEHOLDER.sub(".+?", re.escape(text))
    return re.compile(rf"(?<!\w){body}(?!\w)")


def _foreign_strings() -> dict[str, list[tuple[str, re.Pattern]]]:
    """For each language, the other language's strings that must not show up in its pages."""
    with (TRANSLATIONS_DIR / "pt_BR" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh)
    english, portuguese = [], []
    for entry in catalog:
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for msgid, msgstr in zip(ids, strings, strict=False):
            if msgid != msgstr:
                english.append((msgid, _pattern(msgid)))
                portuguese.append((msgstr, _pattern(msgstr)))
    return {"en": portuguese, "pt-BR": english}


FOREIGN = _foreign_strings()

CONTENT = {
    "en": {
        "room": "Weekend plans",
        "lines": [
            "Hi! Are we still on for Saturday?",
            "Yes! The trail map is at https://example.com/trail",
            "Great. I'll bring the sandwiches",
        ],
    },
    "pt-BR": {
        "room": "Planos do fim de semana",
        "lines": [
            "Oi! Ainda vamos no sábado?",
            "Sim! O mapa da trilha está em https://example.com/trilha",
            "Ótimo. Eu levo os sanduíches",
        ],
    },
}


def check_language(person_, lang: str, page_name: str) -> None:
    text = person_.page.evaluate(VISIBLE_TEXT)
    for name in LANGUAGE_NAMES:
        text = text.replace(name, "")
    found = [source for source, pattern in FOREIGN[lang] if pattern.search(text)]
    assert found == [], f"{page_name} in {lang} shows untranslated text: {found}"
    expect(person_.page.locator("html")).to_have_attribute("lang", lang)


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_every_page_in_both_languages_with_screenshots(person, base_url, lang, viewport):
    content = CONTENT[lang]
    me = person("ana" if lang == "pt-BR" else "alex", locale=lang, viewport=viewport)
    page = me.page

    def visit(name: str) -> None:
        check_language(me, lang, name)
        me.screenshot(f"{name}-{viewport}-{lang}")

    me.goto("/criar_conta")
    visit("signup")
    # wrong values: each message sits next to its field, and the field says it is invalid
    page.locator("#username").fill("x")
    page.locator("#password").fill("short")
    page.locator("#email").fill("not-an-email")
    page.locator("#idade").fill("7")
    page.locator("form[action$='/criar_conta_db'] button[type=submit]").click()
    for field in ("username", "password", "email", "idade"):
        expect(page.locator(f"#{field}-error")).to_be_visible()
        expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
        described = page.locator(f"#{field}").get_attribute("aria-describedby")
        assert f"{field}-error" in described.split()
    visit("signup-errors")

    me.sign_up()
    me.log_out()
    visit("login")
    page.locator("#username").fill(me.username)
    page.locator("#password").fill("wrong password")
    page.locator("form[action$='/login'] button[type=submit]").click()
    expect(page.locator("#form-error")).to_be_visible()
    visit("login-error")
    me.log_in()

    friend = ChatUser(base_url, f"bia{me.username[-6:]}").signup()
    room = me.create_room(f"{content['room']} {me.username[-4:]}")
    me.create_room(f"{'Book club' if lang == 'en' else 'Clube do livro'} {me.username[-4:]}")
    me.goto("/dashboard")
    visit("dashboard")

    me.enter_room(room)
    socket = friend.socket()
    try:
        socket.join(room)
        expect(page.locator("#messages li.notice")).to_have_count(1)
        socket.send(room, content["lines"][0])
        me.expect_message(content["lines"][0])
        me.type_and_send(content["lines"][1])
        expect(page.locator("#messages li.mine[data-state='sent']")).to_have_count(1)
        socket.send(room, content["lines"][2])
        me.expect_message(content["lines"][2])
        page.locator("#text").fill("…")
        visit("chat")
    finally:
        socket.close()

    me.goto("/chat/999999")
    expect(page.locator(".error-status")).to_have_text("404")
    visit("error-404")
    assert not me.errors, me.errors
    # nothing came from anywhere else: no CDN, no web font, no tracker
    foreign = [url for url in me.requested if not url.startswith(base_url.rstrip("/") + "/")]
    assert foreign == []


def test_the_main_flow_works_from_the_keyboard_with_a_visible_focus(person):
    me = person("kim")
    me.sign_up()
    me.log_out()
    page = me.page
    # the login form has focus on arrival; Tab moves on, Enter submits
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type(me.username)
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    outline = page.locator("#password").evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline not in ("", "none")
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboard$"))

    page.locator("#chat_name").focus()
    page.keyboard.type(f"keys {me.username}")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/chat/\d+$"))
    me.wait_online()
    page.locator("#text").focus()
    page.keyboard.type("typed with the keyboard only")
    page.keyboard.press("Enter")
    me.expect_message("typed with the keyboard only")
    # the language switcher is buttons: reachable and usable without a mouse
    page.locator(".lang-switch button[value='pt_BR']").focus()
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "pt-BR")
    expect(page.locator(".chat-title")).to_contain_text(f"keys {me.username}")
    me.wait_online()
    expect(page.locator("#status")).to_contain_text("Conectado")
