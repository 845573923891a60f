"""Browser tests: a real Chromium (Debian's, driven by Playwright) against a real flask-chat.

One browser per test session, one server per module. `base_url` is the server the pages
talk to; a module (or a later cluster variant) may override it to point at nginx.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from livechat import ROOT, ServerProcess, free_port

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
PASSWORD = "correct horse battery"

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

pytestmark = pytest.mark.browser

# every page reports Content-Security-Policy violations to the test (see `person`)
CSP_REPORTER = """
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolation(
    `${e.effectiveDirective} refused ${e.blockedURI || 'inline'} on ${location.pathname}` +
    ` (${e.sourceFile || ''}:${e.lineNumber || 0})`
  );
});
"""


@pytest.fixture(scope="session")
def chromium(needs) -> Iterator[Browser]:
    needs(sync_playwright is not None, "the Python package playwright is not installed")
    needs(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    expect.set_options(timeout=15_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class EmbeddedServer:
    """`flask-chat serve` on a fixed port and instance folder: it can be stopped and restarted."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None):
        self.tmp_path = tmp_path
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: ServerProcess | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.server = ServerProcess(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            env={
                "FLASK_CHAT_INSTANCE": str(self.tmp_path / "instance"),
                "SECRET_KEY": "",
                "DATABASE_URL": "",
                "REDIS_URL": "",
                "FLASK_CHAT_ENV": "development",
                **self.env,
            },
            log_path=self.tmp_path / f"serve-{self.starts}.log",
        )
        self.server.wait_healthy(self.url + "/healthz")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture(scope="module")
def embedded_env() -> dict[str, str]:
    """More environment for the module's server: a module overrides this to change a setting."""
    return {}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, embedded_env) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path_factory.mktemp("browser-serve"), env=embedded_env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def base_url(embedded) -> str:
    """Where the browsers go. The embedded default here; a cluster variant overrides this."""
    return embedded.url


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


class Person:
    """One person at their own browser (a fresh context: own cookies, own tab)."""

    def __init__(self, context: BrowserContext, base_url: str, username: str):
        self.context = context
        # CSP violations on any page of this context: the `person` fixture fails the test
        self.csp_violations: list[str] = []
        context.expose_binding(
            "__cspViolation", lambda _source, text: self.csp_violations.append(str(text))
        )
        context.add_init_script(CSP_REPORTER)
        context.on("console", self._on_console)
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.page: Page = context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.requested: list[str] = []
        self.page.on("request", lambda request: self.requested.append(request.url))

    def _on_console(self, message) -> None:
        # Chromium also logs each violation ("Refused to ... Content Security Policy ...")
        if "Content Security Policy" in message.text:
            self.csp_violations.append(f"console: {message.text}")

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def use_affinity(self, key: str) -> None:
        """Pin this person's tab to an nginx stickiness key (the cluster picks a worker by it)."""
        self.context.add_init_script(f"sessionStorage.setItem('chat-affinity', {json.dumps(key)})")

    def worker(self) -> str | None:
        """The worker that answered this page's last join (the `worker` of the join ack)."""
        return self.page.locator("#chat").get_attribute("data-worker")

    def goto(self, path: str) -> Page:
        self.page.goto(self.base_url + path)
        return self.page

    # ---- the forms, as a person fills them in --------------------------------------------

    def sign_up(self, idade: str = "30") -> Person:
        page = self.goto("/criar_conta")
        page.locator("#username").fill(self.username)
        page.locator("#password").fill(PASSWORD)
        page.locator("#email").fill(f"{self.username}@example.com")
        page.locator("#idade").fill(idade)
        page.locator("form[action$='/criar_conta_db'] button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/dashboard$"))
        return self

    def log_in(self) -> Person:
        page = self.goto("/")
        page.locator("#username").fill(self.username)
        page.locator("#password").fill(PASSWORD)
        page.locator("form[action$='/login'] button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/dashboard$"))
        return self

    def log_out(self) -> None:
        self.page.locator("form[action$='/logout'] button[type=submit]").click()
        expect(self.page).to_have_url(re.compile(r"/$"))

    def create_room(self, name: str) -> int:
        page = self.goto("/dashboard")
        page.locator("#chat_name").fill(name)
        page.locator("form[action$='/create_chat'] button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/chat/\d+$"))
        return int(page.url.rsplit("/", 1)[1])

    # ---- the room page ----------------------------------------------------------------------

    def enter_room(self, room: int) -> Page:
        page = self.goto(f"/chat/{room}")
        self.wait_online()
        return page

    def wait_online(self) -> None:
        expect(self.page.locator("#status")).to_have_attribute("data-state", "online")

    def type_and_send(self, text: str) -> None:
        box = self.page.locator("#text")
        box.fill(text)
        box.press("Enter")

    def shown(self) -> list[dict]:
        """The messages in the room's list, top to bottom."""
        return self.page.locator("#messages li.msg").evaluate_all(
            """items => items.map(li => ({
                id: Number(li.dataset.id), seq: Number(li.dataset.seq),
                author: li.querySelector('.author').textContent,
                text: li.querySelector('.bubble').textContent,
                mine: li.classList.contains('mine'), state: li.dataset.state || null,
            }))"""
        )

    def expect_message(self, text: str) -> None:
        expect(self.page.locator("#messages li.msg .bubble", has_text=text)).to_have_count(1)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def person(chromium, base_url) -> Iterator:
    """Make people: person("alice", locale="pt-BR", viewport="phone") -> Person.

    The test fails if any page of any of them saw a Content-Security-Policy violation.
    """
    contexts = []
    people: list[Person] = []

    def make(
        prefix: str = "user",
        locale: str = "en-US",
        viewport: str = "desktop",
        timezone: str = "America/Sao_Paulo",
    ) -> Person:
        context = chromium.new_context(
            base_url=base_url,
            locale=locale,
            timezone_id=timezone,
            viewport=VIEWPORTS[viewport],
            extra_http_headers={"Accept-Language": locale},
        )
        contexts.append(context)
        people.append(Person(context, base_url, unique(prefix)))
        return people[-1]

    yield make
    for context in contexts:
        context.close()
    violations = [v for p in people for v in p.csp_violations]
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations))
