"""Redirect targets, security headers and the Socket.IO Origin rule, over HTTP."""

from __future__ import annotations

import os
import stat
from urllib.parse import urljoin, urlsplit

import pytest

from app import create_app
from app.db import migrate_database
from app.extensions import db
from app.security import safe_redirect_target

SITE = "http://localhost"


@pytest.fixture
def backend():
    """Headers, redirects and origins do not depend on the database: SQLite only."""
    return "sqlite"


def browser_destination(location: str) -> str:
    """Where a browser goes for this Location: it drops tab/CR/LF and reads "\\" as "/"."""
    for char in "\t\r\n":
        location = location.replace(char, "")
    return urljoin(SITE + "/lang", location.strip().replace("\\", "/"))


HOSTILE_TARGETS = [
    "//evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\r\nSet-Cookie: session=stolen",
    "/ok\r\nLocation: https://evil.example/",
    " //evil.example",
    "\t//evil.example",
    "/..//evil.example",
    "/.//evil.example",
    "/\x00/evil.example",
    "/\x0b/evil.example",
    "https://evil.example/",
    "HTTPS://evil.example",
    "http:evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "%0d%0a/evil.example",
    "/\uff0f\uff0fevil.example",
    "/\u3002evil.example",
    "／／evil.example",
    "evil.example",
    "",
    "/" + "a" * 5000,
]


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_the_language_switcher_never_leaves_the_site(client, accounts, target):
    response = client.post(
        "/lang", data={"csrf_token": accounts.csrf(client), "locale": "en", "next": target}
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.isascii() and location.isprintable()
    destination = urlsplit(browser_destination(location))
    assert (destination.scheme, destination.netloc) == ("http", "localhost"), location


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/criar_conta", "/criar_conta"),
        ("/chat/7?x=1&y=2#bottom", "/chat/7?x=1&y=2#bottom"),
        ("/sala/ção", "/sala/%C3%A7%C3%A3o"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),  # a path on this site, kept encoded
    ],
)
def test_the_language_switcher_returns_to_pages_of_this_site(client, accounts, target, location):
    response = client.post(
        "/lang", data={"csrf_token": accounts.csrf(client), "locale": "en", "next": target}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == location


def test_a_missing_next_goes_to_the_start_page(client, accounts):
    response = client.post("/lang", data={"csrf_token": accounts.csrf(client), "locale": "en"})
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_a_page_reached_with_control_characters_offers_a_safe_return_path(client):
    # the switcher's hidden `next` field comes from the page's own URL
    page = client.get("/nothing%0d%0aSet-Cookie:%20x=1").get_data(as_text=True)
    assert 'name="next" value="/"' in page


@pytest.mark.parametrize("target", [None, 7, ["/"], "/\\", "//"])
def test_safe_redirect_target_refuses_what_is_not_a_same_site_path(target):
    assert safe_redirect_target(target, "/home") == "/home"


# ---- headers -------------------------------------------------------------------------------

CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";") if part.strip()
    )


def assert_page_headers(response) -> None:
    policy = csp(response)
    for directive, value in CSP_DIRECTIVES.items():
        assert policy[directive] == value, (directive, policy)
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in {"same-origin", "no-referrer"}
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "no-store" in response.headers["Cache-Control"]
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP


def test_pages_and_api_answers_carry_the_security_headers_and_are_not_stored(client, accounts):
    assert_page_headers(client.get("/"))
    assert_page_headers(client.get("/criar_conta"))
    assert_page_headers(client.get("/no-such-page"))
    accounts.signup(client)
    room = accounts.create_room(client)
    assert_page_headers(client.get("/dashboard"))
    assert_page_headers(client.get(f"/chat/{room}"))
    assert_page_headers(client.get(f"/api/chats/{room}/messages"))
    assert_page_headers(client.get("/api/chats/999/messages"))  # an error answer too
    assert_page_headers(client.post("/logout"))


def test_static_files_stay_cacheable_and_are_not_sniffed(client):
    response = client.get("/static/chat.js")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in response.headers.get("Cache-Control", "")
    response.close()


def test_hsts_only_when_the_request_came_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/").headers
    secure = client.get("/", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    # with FORWARDED_HOPS=0 nothing a client sends makes plain HTTP look like HTTPS
    forged = client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in forged.headers


def test_hsts_behind_a_trusted_tls_proxy(settings):
    settings.forwarded_hops = 1
    app = create_app(settings)
    response = app.test_client().get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    plain = app.test_client().get("/healthz", headers={"X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in plain.headers


# ---- the Origin rule of the Socket.IO handshake ----------------------------------------------


def handshake(client, origin: str | None, **headers):
    """An Engine.IO long-polling handshake, as a browser on `origin` would start it."""
    if origin is not None:
        headers["Origin"] = origin
    return client.get("/socket.io/?EIO=4&transport=polling", headers=headers)


def test_the_same_origin_opens_a_socket(client):
    response = handshake(client, SITE)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == SITE


@pytest.mark.parametrize(
    "forged",
    [
        {"X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
        {"X-Forwarded-Host": "evil.example, localhost"},
    ],
)
def test_forged_forwarded_headers_do_not_make_a_foreign_origin_same_origin(client, forged):
    response = handshake(client, "http://evil.example", **forged)
    assert response.status_code == 400
    assert "Access-Control-Allow-Origin" not in response.headers


def test_forged_forwarded_proto_does_not_change_the_scheme(client):
    response = handshake(client, "https://localhost", **{"X-Forwarded-Proto": "https"})
    assert response.status_code == 400


def test_a_handshake_without_origin_is_not_a_browser_and_is_not_checked(client):
    response = handshake(client, None, **{"X-Forwarded-Host": "evil.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_foreign_origin_is_refused(client):
    assert handshake(client, "http://evil.example").status_code == 400
    assert handshake(client, "null").status_code == 400


def test_allowed_origins_add_to_the_same_origin(settings):
    settings.allowed_origins = ["https://chat.example.com"]
    client = create_app(settings).test_client()
    assert handshake(client, "https://chat.example.com").status_code == 200
    assert handshake(client, "https://CHAT.example.com:443").status_code == 200
    assert handshake(client, SITE).status_code == 200  # the site itself still works
    assert handshake(client, "http://evil.example").status_code == 400
    assert handshake(client, "http://chat.example.com").status_code == 400


def test_behind_a_trusted_proxy_the_forwarded_host_is_the_same_origin(settings):
    settings.forwarded_hops = 1
    client = create_app(settings).test_client()
    through_proxy = {"X-Forwarded-Host": "chat.example.com", "X-Forwarded-Proto": "https"}
    assert handshake(client, "https://chat.example.com", **through_proxy).status_code == 200
    assert handshake(client, SITE, **through_proxy).status_code == 400
    assert handshake(client, "http://evil.example", **through_proxy).status_code == 400


# ---- the SQLite file ---------------------------------------------------------------------------


def test_the_sqlite_database_and_its_wal_files_are_for_the_owner_only(settings):
    app = create_app(settings)
    migrate_database(app)
    path = settings.instance_path / "flask-chat.db"
    with app.app_context():
        # a write through the pool: the -wal and -shm files exist while it is open
        with db.engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
            conn.commit()
            for suffix in ("", "-wal", "-shm"):
                mode = stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
                assert mode == 0o600, (suffix, oct(mode))
        db.engine.dispose()
    assert stat.S_IMODE(settings.instance_path.stat().st_mode) == 0o700
