"""Settings: every knob read from the environment once, validated at start."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(RuntimeError):
    """The environment does not describe a runnable service."""


def _default_instance_path() -> Path:
    return Path(os.environ.get("FLASK_CHAT_INSTANCE", Path.cwd() / "instance")).resolve()


def _int_env(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool_env(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return None
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Settings:
    """Everything the app needs to know about its environment.

    `Settings.from_env()` is what the service uses; tests build one directly.
    """

    env: str = "development"
    secret_key: str = ""
    instance_path: Path = field(default_factory=_default_instance_path)
    database_url: str = ""
    redis_url: str = ""
    worker_id: str = ""
    # None: same origin only (the Host/X-Forwarded-Host the request came with)
    allowed_origins: list[str] | None = None
    message_max_length: int = 4000
    history_on_join: int = 50
    since_cap: int = 500
    history_page_max: int = 100
    # bytes of messages (UTF-8 JSON) in one join ack, history page or room page
    reply_max_bytes: int = 256 * 1024
    # seconds during which one user's join/leave notices in one room are coalesced
    notice_interval: int = 5
    # "gevent" when the process was monkey-patched, "threading" otherwise (tests)
    async_mode: str = ""
    log_json: bool = False
    # proxies in front that set X-Forwarded-*: 1 behind nginx, 0 when clients connect directly
    forwarded_hops: int = 0
    # None: Secure session cookies in production (HTTPS in front, or a browser on localhost)
    session_cookie_secure: bool | None = None
    # every abuse limit (the app's and the nginx template's): off only for load tests
    rate_limits: bool = True
    testing: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get("FLASK_CHAT_ENV", "development").strip().lower()
        if env not in {"development", "production"}:
            raise ConfigError(f"FLASK_CHAT_ENV must be 'development' or 'production', got {env!r}")
        origins = os.environ.get("ALLOWED_ORIGINS", "").strip()
        return cls(
            env=env,
            secret_key=os.environ.get("SECRET_KEY", ""),
            database_url=os.environ.get("DATABASE_URL", ""),
            redis_url=os.environ.get("REDIS_URL", ""),
            worker_id=os.environ.get("WORKER_ID", ""),
            allowed_origins=[o.strip() for o in origins.split(",") if o.strip()] or None,
            message_max_length=_int_env("MESSAGE_MAX_LENGTH", 4000, 1, 100_000),
            history_on_join=_int_env("HISTORY_ON_JOIN", 50, 1, 500),
            since_cap=_int_env("SINCE_CAP", 500, 10, 10_000),
            reply_max_bytes=_int_env("REPLY_MAX_BYTES", 256 * 1024, 16 * 1024, 64 * 1024 * 1024),
            notice_interval=_int_env("NOTICE_INTERVAL", 5, 0, 3600),
            forwarded_hops=_int_env("FORWARDED_HOPS", 0, 0, 5),
            log_json=os.environ.get("LOG_FORMAT", "json" if env == "production" else "text")
            == "json",
            session_cookie_secure=_bool_env("SESSION_COOKIE_SECURE"),
            rate_limits=_bool_env("RATE_LIMITS") is not False,
        )

    def resolve(self) -> Settings:
        """Fill the derived defaults; refuse to run production without a secret."""
        self.instance_path = Path(self.instance_path)
        self.instance_path.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.instance_path / 'flask-chat.db'}"
        if not self.secret_key:
            if self.env == "production":
                raise ConfigError(
                    "SECRET_KEY is not set. Production refuses to start without it: "
                    "generate one with: "
                    'python -c "import secrets; print(secrets.token_urlsafe(48))"'
                )
            self.secret_key = self._embedded_secret()
        if not self.worker_id:
            self.worker_id = default_worker_id()
        if self.session_cookie_secure is None:
            self.session_cookie_secure = self.env == "production" and not self.testing
        if not self.async_mode:
            self.async_mode = "gevent" if _gevent_patched() else "threading"
        return self

    def _embedded_secret(self) -> str:
        # the embedded mode keeps one generated key so sessions survive restarts
        path = self.instance_path / "secret_key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")
