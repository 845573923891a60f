"""Settings from the environment: the session cookie's Secure flag."""

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
