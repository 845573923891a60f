"""Login sessions: only a hash stored, idle and absolute lifetimes, touches, pruning, the
migration that hashes existing tokens, and the lifetimes' settings."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select, text

from app import create_app
from app.accounts import service
from app.config import ConfigError, Settings, parse_duration
from app.db import MIGRATIONS_DIR
from app.extensions import db
from app.models import LoginSession, utcnow
from servers import need, postgres_unreachable, private_postgres_schema


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def alice(ctx):
    return service.register("alice", "correct horse", "a@example.com", 30)


def age(token: str, *, created=timedelta(0), seen=timedelta(0)) -> None:
    """Move a session back in time."""
    row = db.session.get(LoginSession, service.token_hash(token))
    row.created_at -= created
    row.last_seen_at -= seen
    db.session.commit()


def sessions() -> int:
    return db.session.scalar(select(func.count()).select_from(LoginSession))


def test_only_the_sha256_of_the_token_is_stored(alice):
    token = service.start_session(alice, "Mozilla/5.0 Firefox/128.0")
    row = db.session.scalar(select(LoginSession))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    dump = " ".join(str(v) for v in db.session.execute(select(LoginSession.__table__)).one())
    assert token not in dump
    assert service.load_session_user(token).id == alice.id
    # the stored hash is not a token: it opens nothing
    assert service.load_session_user(row.token_hash) is None


def test_a_session_unused_for_the_idle_timeout_ends(app, alice):
    token = service.start_session(alice)
    idle = timedelta(seconds=app.config["CHAT"].session_idle_timeout)
    age(token, seen=idle - timedelta(minutes=5))
    assert service.load_session_user(token) is not None  # and that use moved last_seen_at
    age(token, seen=idle - timedelta(minutes=1))
    assert service.load_session_user(token) is not None
    age(token, seen=idle + timedelta(seconds=1))
    assert service.load_session_user(token) is None


def test_a_session_ends_at_its_absolute_lifetime_however_busy(app, alice):
    token = service.start_session(alice)
    max_age = timedelta(seconds=app.config["CHAT"].session_max_age)
    age(token, created=max_age - timedelta(seconds=30))
    assert service.load_session_user(token) is not None
    age(token, created=timedelta(seconds=31))
    assert service.load_session_user(token) is None


def test_use_is_written_at_most_once_a_minute(alice):
    token = service.start_session(alice)
    age(token, seen=timedelta(seconds=30))
    before = db.session.scalar(select(LoginSession.last_seen_at))
    service.load_session_user(token)
    db.session.expire_all()
    assert db.session.scalar(select(LoginSession.last_seen_at)) == before
    age(token, seen=timedelta(seconds=31))
    service.load_session_user(token)
    db.session.expire_all()
    assert utcnow() - db.session.scalar(select(LoginSession.last_seen_at)) < timedelta(seconds=5)


def test_expired_sessions_are_pruned_and_at_every_login(app, alice):
    settings = app.config["CHAT"]
    idle_out = service.start_session(alice)
    too_old = service.start_session(alice)
    live = service.start_session(alice)
    age(idle_out, seen=timedelta(seconds=settings.session_idle_timeout + 1))
    age(too_old, created=timedelta(seconds=settings.session_max_age + 1))
    assert sessions() == 3
    service.start_session(alice)  # a login prunes
    assert sessions() == 2
    assert service.load_session_user(live) is not None
    assert service.prune_expired_sessions() == 0


def test_the_pruned_columns_are_indexed(ctx):
    indexed = {tuple(ix.columns.keys()) for ix in LoginSession.__table__.indexes}
    assert {("created_at",), ("last_seen_at",), ("user_id",)} <= indexed


def test_live_sessions_leaves_out_ended_and_expired_ones(app, alice):
    a, b, c = (service.start_session(alice) for _ in range(3))
    service.end_session(b)
    age(c, created=timedelta(seconds=app.config["CHAT"].session_max_age + 1))
    live = service.live_sessions([service.token_hash(t) for t in (a, b, c)])
    assert set(live) == {service.token_hash(a)}


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90", 90), ("30s", 30), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1.5h", 5400)],
)
def test_durations_take_human_units(raw, seconds):
    assert parse_duration("X", raw, 1, 10**9) == seconds


@pytest.mark.parametrize("raw", ["", "soon", "7 days", "-1d", "0", "401d", "1w"])
def test_bad_durations_are_refused_at_start(monkeypatch, raw):
    monkeypatch.setenv("SESSION_MAX_AGE", raw)
    if raw == "":
        assert Settings.from_env().session_max_age == 30 * 86400
        return
    with pytest.raises(ConfigError, match="SESSION_MAX_AGE"):
        Settings.from_env()


def test_lifetime_and_connection_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("SESSION_IDLE_TIMEOUT", "30m")
    monkeypatch.setenv("SESSION_MAX_AGE", "12h")
    monkeypatch.setenv("SOCKETS_PER_USER", "5")
    monkeypatch.setenv("SOCKETS_PER_ADDRESS", "50")
    monkeypatch.setenv("SOCKET_CONNECT_TIMEOUT", "3s")
    settings = Settings.from_env()
    assert (settings.session_idle_timeout, settings.session_max_age) == (1800, 43200)
    assert (settings.sockets_per_user, settings.sockets_per_address) == (5, 50)
    assert settings.socket_connect_timeout == 3


def test_defaults_are_a_week_idle_and_a_month_in_all(monkeypatch):
    for name in ("SESSION_IDLE_TIMEOUT", "SESSION_MAX_AGE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert settings.session_idle_timeout == 7 * 86400
    assert settings.session_max_age == 30 * 86400


# -- the migration keeps current users logged in ----------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    reason = postgres_unreachable()
    need(reason is None, reason or "")
    with private_postgres_schema("m") as url:
        yield url


def test_the_migration_hashes_existing_tokens_so_users_stay_logged_in(tmp_path, fresh_database_url):
    settings = Settings(
        secret_key="k",
        instance_path=tmp_path / "instance",
        database_url=fresh_database_url,
        worker_id="t",
        async_mode="threading",
        testing=True,
    )
    app = create_app(settings)
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0002")
        db.session.execute(
            text(
                "INSERT INTO users (id, username, username_key, password, email, idade, "
                "created_at) VALUES (1, 'old', 'old', 'x', 'old@example.com', 30, :now)"
            ),
            {"now": utcnow()},
        )
        db.session.execute(
            text(
                "INSERT INTO login_sessions (token, user_id, created_at) "
                "VALUES ('the-old-token', 1, :now)"
            ),
            {"now": utcnow()},
        )
        db.session.commit()
        upgrade(directory=MIGRATIONS_DIR)
        assert service.load_session_user("the-old-token").username == "old"
        stored = db.session.scalar(select(LoginSession.token_hash))
        assert stored == hashlib.sha256(b"the-old-token").hexdigest()
        db.session.remove()
        db.engine.dispose()
