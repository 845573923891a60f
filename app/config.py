"""Settings: every knob read from the environment once, validated at start."""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from app.limits import DEFAULT_LIMITS, parse_rates


class ConfigError(RuntimeError):
    """The environment does not describe a runnable service."""


MIN_SECRET_KEY_BYTES = 32
KEY_COMMAND = 'python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
# scheme://host[:port], nothing after it: what browsers send as Origin
_ORIGIN_RE = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def check_allowed_origins(origins: list[str]) -> list[str]:
    """ALLOWED_ORIGINS adds origins to the site's own; "*" (every site) is refused."""
    for origin in origins:
        if origin == "*" or "*" in origin:
            raise ConfigError(
                "ALLOWED_ORIGINS must not contain '*': it would let every web site open "
                "Socket.IO connections with its visitors' logins. List the extra origins "
                "(e.g. https://chat.example.com); the site's own origin is always allowed."
            )
        if not _ORIGIN_RE.fullmatch(origin):
            raise ConfigError(
                f"ALLOWED_ORIGINS: {origin!r} is not an origin; write scheme://host[:port] "
                "with no path, e.g. https://chat.example.com"
            )
    return origins


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


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(name: str, raw: str, low: float, high: float) -> float:
    """Seconds in a duration such as `90`, `30s`, `30m`, `12h` or `7d`; ConfigError otherwise."""
    text = raw.strip().lower()
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)", text)
    if not match:
        raise ConfigError(
            f"{name} must be a duration like 90s, 30m, 12h or 7d (seconds without a unit), "
            f"got {raw!r}"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if not low <= seconds <= high:
        raise ConfigError(f"{name} must be from {low:g} to {high:g} seconds, got {raw!r}")
    return seconds


def _duration_env(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return parse_duration(name, raw, low, high)


def _choice_env(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _bool_env(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return None
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def limit_env_name(name: str) -> str:
    """`message.user` is set by RATE_LIMIT_MESSAGE_USER."""
    return "RATE_LIMIT_" + name.upper().replace(".", "_")


def _limits_env() -> dict[str, str]:
    limits = {}
    for name, default in DEFAULT_LIMITS.items():
        env_name = limit_env_name(name)
        value = os.environ.get(env_name, "").strip() or default
        try:
            parse_rates(value)
        except ValueError as exc:
            raise ConfigError(f"{env_name}: {exc}") from None
        limits[name] = value
    return limits


DAY = 86400.0


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
    # origins allowed to open Socket.IO besides the site's own (always allowed); no "*"
    allowed_origins: list[str] | None = None
    message_max_length: int = 4000
    # UTF-8 bytes per message: 4,000 characters of accented Latin text (2 bytes at most
    # each), but only 2,000 emoji (4 bytes each)
    message_max_bytes: int = 8000
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
    # OS threads hashing passwords off the gevent hub; 0: hash on the hub (A/B in bench/)
    password_hash_threads: int = 2
    # every abuse limit (the app's and the nginx template's): off only for load tests
    rate_limits: bool = True
    # broadcasts framed once for every recipient (app/realtime/fanout.py): off only for A/B
    fast_fanout: bool = True
    # "full": an acked message is on disk (the WAL fsynced per commit); "normal": committed,
    # survives a crash of the process but not of the machine (bench/RESULTS.md: the cost)
    sqlite_synchronous: str = "full"
    # limit name -> rates, e.g. "message.user": "60/30s" (app/limits.py); "off" for none
    limits: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    # login sessions end after this long without a request or a live socket ...
    session_idle_timeout: float = 7 * DAY
    # ... and this long after the login, whatever happens
    session_max_age: float = 30 * DAY
    # open Socket.IO connections, counted across every worker (0: no limit)
    sockets_per_user: int = 20
    sockets_per_address: int = 100
    # an Engine.IO session that has not completed the Socket.IO CONNECT is closed after this
    socket_connect_timeout: float = 5.0
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
            message_max_bytes=_int_env("MESSAGE_MAX_BYTES", 8000, 4, 400_000),
            password_hash_threads=_int_env("PASSWORD_HASH_THREADS", 2, 0, 64),
            history_on_join=_int_env("HISTORY_ON_JOIN", 50, 1, 500),
            since_cap=_int_env("SINCE_CAP", 500, 10, 10_000),
            reply_max_bytes=_int_env("REPLY_MAX_BYTES", 256 * 1024, 16 * 1024, 64 * 1024 * 1024),
            notice_interval=_int_env("NOTICE_INTERVAL", 5, 0, 3600),
            forwarded_hops=_int_env("FORWARDED_HOPS", 0, 0, 5),
            log_json=os.environ.get("LOG_FORMAT", "json" if env == "production" else "text")
            == "json",
            session_cookie_secure=_bool_env("SESSION_COOKIE_SECURE"),
            rate_limits=_bool_env("RATE_LIMITS") is not False,
            fast_fanout=_bool_env("FAST_FANOUT") is not False,
            sqlite_synchronous=_choice_env("SQLITE_SYNCHRONOUS", "full", ("full", "normal")),
            limits=_limits_env(),
            session_idle_timeout=_duration_env("SESSION_IDLE_TIMEOUT", 7 * DAY, 1, 400 * DAY),
            session_max_age=_duration_env("SESSION_MAX_AGE", 30 * DAY, 1, 400 * DAY),
            sockets_per_user=_int_env("SOCKETS_PER_USER", 20, 0, 100_000),
            sockets_per_address=_int_env("SOCKETS_PER_ADDRESS", 100, 0, 1_000_000),
            socket_connect_timeout=_duration_env("SOCKET_CONNECT_TIMEOUT", 5.0, 1, 300),
        )

    def resolve(self) -> Settings:
        """Fill the derived defaults; refuse to run production without a secret."""
        self.instance_path = Path(self.instance_path)
        # the SQLite file and the generated key live here: owner only
        self.instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.instance_path / 'flask-chat.db'}"
        if not self.secret_key:
            if self.env == "production":
                raise ConfigError(
                    "SECRET_KEY is not set. Production refuses to start without it: "
                    f"generate one with: {KEY_COMMAND}"
                )
            self.secret_key = self._embedded_secret()
        if self.env == "production" and len(self.secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(
                f"SECRET_KEY is too short ({len(self.secret_key.encode())} bytes). Production "
                f"needs at least {MIN_SECRET_KEY_BYTES} bytes: "
                f"generate one with: {KEY_COMMAND}"
            )
        self.allowed_origins = check_allowed_origins(self.allowed_origins or [])
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
