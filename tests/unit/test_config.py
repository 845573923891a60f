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
    monkeypatch.setenv("SECRET_KEY", "k")
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
