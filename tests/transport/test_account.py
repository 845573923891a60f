"""The account page: password change, the list of sessions, ending one, log out everywhere.

Sockets are Flask-SocketIO test clients on the same server: ending a session must
disconnect them (the real servers and the cluster are in tests/e2e and tests/cluster).
"""

import re

import pytest
from sqlalchemy import select

from app.extensions import db, socketio
from app.models import LoginSession, User


def form(accounts, client, path, **data):
    return client.post(path, data={"csrf_token": accounts.csrf(client, "/account"), **data})


def second_login(app, accounts, username="alice", password="correct horse"):
    client = app.test_client()
    assert accounts.login(client, username, password).status_code == 303
    return client


def change(accounts, client, current="correct horse", new="a new secret", confirm=None):
    return form(
        accounts,
        client,
        "/account/password",
        current_password=current,
        new_password=new,
        confirm_password=new if confirm is None else confirm,
    )


def test_the_account_page_needs_a_login(client):
    assert client.get("/account").status_code == 302


def test_every_logged_in_page_links_to_the_account_page(accounts):
    client = accounts.logged_in_client()
    for path in ("/dashboard", "/account", "/logout"):
        assert 'href="/account"' in client.get(path).get_data(as_text=True), path


def test_the_account_page_lists_the_sessions_and_marks_this_one(app, accounts):
    client = accounts.logged_in_client()
    other = app.test_client()
    other.post(
        "/login",
        data={"csrf_token": accounts.csrf(other), "username": "alice", "password": "correct horse"},
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko Firefox/128.0"},
    )
    html = client.get("/account").get_data(as_text=True)
    assert html.count('class="session-item"') == 2
    assert html.count("This session") == 1
    assert "Firefox (Linux)" in html
    # one button to end a session: the other one's
    assert html.count('action="/account/sessions/end"') == 1


def test_a_password_change_keeps_this_session_and_ends_the_others(app, accounts, socket_for):
    client = accounts.logged_in_client()
    other = second_login(app, accounts)
    mine, theirs = socket_for(client), socket_for(other)
    response = change(accounts, client)
    assert response.status_code == 303 and response.headers["Location"].endswith("/account")
    assert client.get("/dashboard").status_code == 200
    assert other.get("/dashboard").status_code == 302
    assert mine.is_connected() and not theirs.is_connected()
    # the new password works, the old one no longer does
    assert accounts.login(app.test_client(), "alice", "a new secret").status_code == 303
    assert accounts.login(app.test_client(), "alice", "correct horse").status_code == 401


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"current": "not my password"}, "current_password", "not your current password"),
        ({"new": "short"}, "new_password", "8 to 128 characters"),
        ({"confirm": "something else"}, "confirm_password", "two new passwords differ"),
    ],
)
def test_a_refused_password_change_shows_the_error_next_to_its_field(
    app, accounts, fields, field, text
):
    client = accounts.logged_in_client()
    other = second_login(app, accounts)
    response = change(accounts, client, **fields)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    match = re.search(rf'<p class="error field-error" id="{field}-error">([^<]*)</p>', html)
    assert match and text in match.group(1)
    # nothing changed: the other session lives, the old password still works
    assert other.get("/dashboard").status_code == 200
    assert accounts.login(app.test_client()).status_code == 303


def test_wrong_current_passwords_are_throttled_like_logins(app, accounts):
    from app.accounts.service import LOGIN_FAILURES_PER_NAME

    client = accounts.logged_in_client()
    for _ in range(LOGIN_FAILURES_PER_NAME):
        assert change(accounts, client, current="guess").status_code == 400
    response = change(accounts, client)  # the right one, too late
    assert response.status_code == 429
    assert "Too many failed logins" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username_key == "alice"))
        from app.accounts.service import verify_password

        assert verify_password(user.password, "correct horse")


def test_log_out_everywhere_ends_every_session_and_socket(app, accounts, socket_for):
    client = accounts.logged_in_client()
    other = second_login(app, accounts)
    mine, theirs = socket_for(client), socket_for(other)
    response = form(accounts, client, "/account/logout-everywhere")
    assert response.status_code == 303
    assert client.get("/dashboard").status_code == 302
    assert other.get("/dashboard").status_code == 302
    assert not mine.is_connected() and not theirs.is_connected()
    with app.app_context():
        assert db.session.scalars(select(LoginSession)).all() == []


def test_ending_another_session_from_the_account_page(app, accounts, socket_for):
    client = accounts.logged_in_client()
    other = second_login(app, accounts)
    theirs = socket_for(other)
    html = client.get("/account").get_data(as_text=True)
    hashed = re.search(r'name="session" value="([0-9a-f]{64})"', html).group(1)
    response = form(accounts, client, "/account/sessions/end", session=hashed)
    assert response.status_code == 303
    assert other.get("/dashboard").status_code == 302
    assert client.get("/dashboard").status_code == 200
    assert not theirs.is_connected()


def test_a_session_of_another_user_cannot_be_ended(app, accounts):
    bob = accounts.logged_in_client("bob")
    with app.app_context():
        bobs = db.session.scalar(select(LoginSession.token_hash))
    alice = accounts.logged_in_client("alice")
    form(accounts, alice, "/account/sessions/end", session=bobs)
    assert bob.get("/dashboard").status_code == 200


@pytest.mark.parametrize(
    "path", ["/account/password", "/account/logout-everywhere", "/account/sessions/end"]
)
def test_account_forms_need_the_csrf_token(accounts, path):
    client = accounts.logged_in_client()
    assert client.post(path, data={"current_password": "correct horse"}).status_code == 400
    assert client.get("/dashboard").status_code == 200


def test_the_account_page_speaks_portuguese(accounts):
    client = accounts.logged_in_client()
    client.set_cookie("lang", "pt_BR")
    html = client.get("/account").get_data(as_text=True)
    assert "Alterar a senha" in html and "Sair de todas as sessões" in html
    response = change(accounts, client, current="errada")
    assert "Essa não é a sua senha atual." in response.get_data(as_text=True)


def test_the_old_cookie_cannot_open_a_socket_after_logout(app, accounts):
    client = accounts.logged_in_client()
    stolen = client.get_cookie("session").value
    client.post("/logout", data={"csrf_token": accounts.csrf(client, "/dashboard")})
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert not socketio.test_client(app, flask_test_client=replay).is_connected()
