"""Settings from the environment: the session cookie's Secure flag, input and hashing knobs."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings


@pytest.mark.parametrize(
    ("env", "raw", "expected"),
    [
        ("production", None, True),
        ("development", None, False),
        ("production", "false", False),
        ("development", "true", True),
    ],
)
def test_session_cookie_secure_follows_env_and_override(monkeypatch, tmp_path, env, raw, expected):
    monkeypatch.setenv("FLASK_CHAT_ENV", env)
    monkeypatch.setenv("SECRET_KEY", "k" * 32)
    if raw is None:
        monkeypatch.delenv("SESSION_COOKIE_SECURE", raising=False)
    else:
        monkeypatch.setenv("SESSION_COOKIE_SECURE", raw)
    settings = Settings.from_env()
    settings.instance_path = tmp_path
    assert settings.resolve().session_cookie_secure is expected


def test_session_cookie_secure_rejects_other_words(monkeypatch):
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "maybe")
    with pytest.raises(ConfigError, match="SESSION_COOKIE_SECURE"):
        Settings.from_env()


@pytest.mark.parametrize("key", ["", "short", "x" * 31, "é" * 15])
def test_production_refuses_a_missing_or_short_secret_key(tmp_path, key):
    settings = Settings(env="production", secret_key=key, instance_path=tmp_path)
    with pytest.raises(ConfigError, match="SECRET_KEY") as refused:
        settings.resolve()
    assert "secrets.token_urlsafe" in str(refused.value)


def test_production_accepts_a_32_byte_secret_and_development_any(tmp_path):
    assert Settings(env="production", secret_key="x" * 32, instance_path=tmp_path).resolve()
    assert Settings(env="development", secret_key="dev", instance_path=tmp_path).resolve()


@pytest.mark.parametrize("raw", ["*", "https://a.example,*", "https://*.example"])
def test_allowed_origins_refuses_a_wildcard(monkeypatch, tmp_path, raw):
    monkeypatch.setenv("ALLOWED_ORIGINS", raw)
    settings = Settings.from_env()
    settings.instance_path = tmp_path
    with pytest.raises(ConfigError, match=r"ALLOWED_ORIGINS must not contain '\*'"):
        settings.resolve()


@pytest.mark.parametrize(
    "raw", ["chat.example.com", "https://chat.example.com/", "ftp://x.example"]
)
def test_allowed_origins_must_be_origins(monkeypatch, tmp_path, raw):
    monkeypatch.setenv("ALLOWED_ORIGINS", raw)
    settings = Settings.from_env()
    settings.instance_path = tmp_path
    with pytest.raises(ConfigError, match="is not an origin"):
        settings.resolve()


def test_allowed_origins_are_a_list(monkeypatch, tmp_path):
    monkeypatch.setenv("ALLOWED_ORIGINS", " https://a.example , http://b.example:8080,")
    settings = Settings.from_env()
    settings.instance_path = tmp_path
    assert settings.resolve().allowed_origins == ["https://a.example", "http://b.example:8080"]


def test_the_instance_folder_is_created_for_its_owner_only(tmp_path):
    Settings(instance_path=tmp_path / "instance").resolve()
    assert (tmp_path / "instance").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("name", "raw", "attribute", "expected"),
    [
        ("MESSAGE_MAX_BYTES", None, "message_max_bytes", 8000),
        ("MESSAGE_MAX_BYTES", "16000", "message_max_bytes", 16000),
        ("PASSWORD_HASH_THREADS", None, "password_hash_threads", 2),
        ("PASSWORD_HASH_THREADS", "0", "password_hash_threads", 0),
    ],
)
def test_input_and_hashing_settings(monkeypatch, name, raw, attribute, expected):
    if raw is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, raw)
    assert getattr(Settings.from_env(), attribute) == expected


@pytest.mark.parametrize(
    ("name", "raw"), [("MESSAGE_MAX_BYTES", "0"), ("PASSWORD_HASH_THREADS", "-1")]
)
def test_input_and_hashing_settings_are_validated(monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=name):
        Settings.from_env()


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, "full"), ("normal", "normal"), ("FULL", "full")]
)
def test_sqlite_synchronous_is_full_unless_an_operator_chooses_normal(
    monkeypatch, tmp_path, raw, expected
):
    from sqlalchemy import create_engine

    from app.db import install_sqlite_pragmas

    if raw is None:
        monkeypatch.delenv("SQLITE_SYNCHRONOUS", raising=False)
    else:
        monkeypatch.setenv("SQLITE_SYNCHRONOUS", raw)
    settings = Settings.from_env()
    assert settings.sqlite_synchronous == expected
    # what the database then does: PRAGMA synchronous 2 is FULL, 1 is NORMAL
    engine = create_engine(f"sqlite:///{tmp_path / 'chat.db'}")
    install_sqlite_pragmas(engine, settings.sqlite_synchronous)
    with engine.connect() as conn:
        level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert level == {"full": 2, "normal": 1}[expected]


def test_sqlite_synchronous_refuses_other_words(monkeypatch):
    monkeypatch.setenv("SQLITE_SYNCHRONOUS", "off")
    with pytest.raises(ConfigError, match="SQLITE_SYNCHRONOUS"):
        Settings.from_env()
