"""Shared fixtures: an app per test on each database backend, clients, and a user helper."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from app import create_app
from app.config import Settings
from app.db import migrate_database
from app.extensions import db, socketio
from servers import (  # noqa: F401 - need() is the tests' helper
    IN_CI,
    POSTGRES_URL,
    need,
    postgres_unreachable,
    private_postgres_schema,
)

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def needs():
    """`need` for the conftest files of sub-folders: they cannot import this module by name."""
    return need


@pytest.fixture(scope="session")
def postgres_schema_url():
    """A private PostgreSQL schema for this test run, migrated once; None when unreachable."""
    reason = postgres_unreachable()
    if reason:
        yield None, reason
        return
    with private_postgres_schema("t") as url:
        yield url, None


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param


@pytest.fixture
def settings(tmp_path, backend, postgres_schema_url) -> Settings:
    database_url = ""
    if backend == "postgresql":
        url, reason = postgres_schema_url
        need(url is not None, reason or "")
        database_url = url
    return Settings(
        env="development",
        secret_key="test-secret-key",
        instance_path=tmp_path / "instance",
        database_url=database_url,
        worker_id="test-worker",
        async_mode="threading",
        testing=True,
    )


@pytest.fixture
def app(settings):
    app = create_app(settings)
    migrate_database(app)
    yield app
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            # the schema is shared by the run: empty it for the next test
            tables = ", ".join(db.metadata.tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


class Accounts:
    """Signs up and logs in through the real forms, CSRF token included."""

    def __init__(self, app):
        self.app = app

    def csrf(self, client, path: str = "/") -> str:
        page = client.get(path).get_data(as_text=True)
        match = CSRF_RE.search(page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def signup(self, client, username="alice", password="correct horse", email=None, idade="30"):
        return client.post(
            "/criar_conta_db",
            data={
                "csrf_token": self.csrf(client, "/criar_conta"),
                "username": username,
                "password": password,
                "email": email or f"{username}@example.com",
                "idade": idade,
            },
        )

    def login(self, client, username="alice", password="correct horse"):
        return client.post(
            "/login",
            data={"csrf_token": self.csrf(client), "username": username, "password": password},
        )

    def logged_in_client(self, username="alice"):
        """A fresh test client with a new account, logged in."""
        client = self.app.test_client()
        response = self.signup(client, username=username)
        assert response.status_code == 303, response.get_data(as_text=True)
        return client

    def create_room(self, client, name="general") -> int:
        response = client.post(
            "/create_chat", data={"csrf_token": self.csrf(client, "/dashboard"), "chat_name": name}
        )
        assert response.status_code == 303, response.get_data(as_text=True)
        return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


@pytest.fixture
def accounts(app):
    return Accounts(app)


@pytest.fixture
def socket_for(app):
    """A Socket.IO test client riding on a logged-in Flask test client's session."""
    made = []

    def make(http_client):
        sio = socketio.test_client(app, flask_test_client=http_client)
        made.append(sio)
        return sio

    yield make
    for sio in made:
        if sio.is_connected():
            sio.disconnect()
