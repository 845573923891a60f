import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import LoginSession, User


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


def test_login_page_is_the_home_page(client):
    page = client.get("/")
    assert page.status_code == 200
    assert 'name="username"' in page.get_data(as_text=True)
    assert 'name="password"' in page.get_data(as_text=True)


def test_signup_page_has_the_seed_fields(client):
    page = client.get("/criar_conta").get_data(as_text=True)
    for field in ("username", "password", "email", "idade"):
        assert f'name="{field}"' in page


def test_criar_conta_redirect_goes_to_the_signup_page(client, accounts):
    response = client.post("/criar_conta_redirect", data={"csrf_token": accounts.csrf(client)})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/criar_conta")


def test_signup_creates_the_account_and_logs_in(app, client, accounts):
    response = accounts.signup(client, username="alice")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/dashboard")
    assert client.get("/dashboard").status_code == 200
    # a logged-in user who opens / lands on the dashboard
    assert client.get("/").headers["Location"].endswith("/dashboard")
    assert user_count(app) == 1


@pytest.mark.parametrize(
    ("field", "overrides", "message"),
    [
        ("username", {"username": "x"}, "3 to 32 characters"),
        ("password", {"password": "short"}, "8 to 128 characters"),
        ("email", {"email": "nope"}, "valid email"),
        ("idade", {"idade": "abc"}, "whole number from 13 to 120"),
    ],
)
def test_bad_signup_rerenders_with_the_message_and_stores_nothing(
    app, client, accounts, field, overrides, message
):
    response = accounts.signup(client, **overrides)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert f'id="{field}-error"' in page  # the message sits next to its field
    assert user_count(app) == 0


def test_signup_keeps_what_was_typed_except_the_password(client, accounts):
    page = accounts.signup(client, username="alice", password="short", idade="44")
    text = page.get_data(as_text=True)
    assert 'value="alice"' in text
    assert 'value="44"' in text
    assert 'value="short"' not in text


def test_taken_username_is_a_400_with_a_message(app, client, accounts):
    accounts.signup(client, username="alice")
    other = app.test_client()
    response = accounts.signup(other, username="ALICE")
    assert response.status_code == 400
    assert "That username is taken." in response.get_data(as_text=True)
    assert user_count(app) == 1


def test_forms_without_a_csrf_token_are_refused(app, client):
    response = client.post(
        "/criar_conta_db",
        data={
            "username": "alice",
            "password": "correct horse",
            "email": "a@example.com",
            "idade": "30",
        },
    )
    assert response.status_code == 400
    assert "This form expired" in response.get_data(as_text=True)
    assert user_count(app) == 0


def test_login_needs_a_csrf_token_too(client, accounts):
    accounts.signup(client.application.test_client())  # alice exists
    response = client.post("/login", data={"username": "alice", "password": "correct horse"})
    assert response.status_code == 400
    assert client.get("/dashboard").status_code == 302


def test_login_with_the_right_password_opens_the_dashboard(app, accounts):
    accounts.signup(app.test_client())
    client = app.test_client()
    response = accounts.login(client)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/dashboard")
    assert client.get("/dashboard").status_code == 200


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong pass"), ("nobody", "x" * 9)])
def test_failed_login_gives_the_same_message_either_way(app, accounts, username, password):
    accounts.signup(app.test_client())
    client = app.test_client()
    response = accounts.login(client, username=username, password=password)
    assert response.status_code == 401
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


def test_login_starts_a_fresh_session(app, accounts):
    accounts.signup(app.test_client())
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    accounts.login(client)
    with client.session_transaction() as sess:
        assert "planted" not in sess


@pytest.mark.parametrize("again", ["login", "signup"])
def test_a_new_login_in_the_same_browser_ends_the_session_it_had(app, accounts, again):
    client = accounts.logged_in_client()
    before = client.get_cookie("session").value
    csrf = accounts.csrf(client, "/dashboard")
    if again == "login":
        form = {"csrf_token": csrf, "username": "alice", "password": "correct horse"}
        response = client.post("/login", data=form)
    else:
        form = {
            "csrf_token": csrf,
            "username": "bob",
            "password": "correct horse",
            "email": "bob@example.com",
            "idade": "30",
        }
        response = client.post("/criar_conta_db", data=form)
    assert response.status_code == 303
    assert client.get("/dashboard").status_code == 200
    # the cookie of the session before is worthless: one browser, one live login session
    replay = app.test_client()
    replay.set_cookie("session", before)
    assert replay.get("/dashboard").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 1


def test_logout_ends_the_session_on_the_server(app, accounts):
    client = accounts.logged_in_client()
    stolen_cookie = client.get_cookie("session").value
    response = client.post("/logout", data={"csrf_token": accounts.csrf(client, "/dashboard")})
    assert response.status_code == 303
    assert client.get("/dashboard").status_code == 302
    # the cookie from before logout is worthless now
    replay = app.test_client()
    replay.set_cookie("session", stolen_cookie)
    assert replay.get("/dashboard").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 0


def test_get_logout_changes_nothing_and_shows_the_logout_button(accounts):
    client = accounts.logged_in_client()
    page = client.get("/logout")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'method="post" action="/logout"' in html and 'name="csrf_token"' in html
    # a link from any site cannot log anyone out
    assert client.get("/dashboard").status_code == 200


def test_get_logout_when_logged_out_goes_to_the_login_page(client):
    response = client.get("/logout")
    assert response.status_code == 302 and response.headers["Location"].endswith("/")


def test_post_logout_without_the_csrf_token_is_refused(accounts):
    client = accounts.logged_in_client()
    assert client.post("/logout").status_code == 400
    assert client.get("/dashboard").status_code == 200


def test_get_login_goes_to_the_login_page(client):
    assert client.get("/login").headers["Location"].endswith("/")


@pytest.mark.parametrize("path", ["/nope", "/chat/abc", "/criar_conta_db"])
def test_unknown_or_wrong_method_paths_give_a_readable_4xx(client, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500
    assert "<html" in response.get_data(as_text=True)


def test_too_many_failed_logins_give_a_429_page_with_the_wait(app, accounts):
    from app.accounts.service import LOGIN_FAILURES_PER_NAME

    accounts.signup(app.test_client())
    client = app.test_client()
    for _ in range(LOGIN_FAILURES_PER_NAME):
        assert accounts.login(client, password="wrong pass").status_code == 401
    response = accounts.login(client)  # the right password, too late
    assert response.status_code == 429
    assert "Too many failed logins. Try again in 15 minutes." in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302
