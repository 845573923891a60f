"""Abuse limits: named rates (`message.user`, `signup.address`, ...) checked per key.

Guarantee. Each named limit is a GCRA (a token bucket kept as one timestamp per key):
`N/period` lets N requests through at once, then one every period/N. A check is all or
nothing over the keys it names (a user's limit and their connection's): a refused request
consumes nothing, and its `retry_after` (seconds) is exact — after waiting that long the same
request is allowed, unless others of the same keys came in between.

Where the counts live. Limits whose key is a connection (`*.connection`) are always kept in
this process: a connection lives in one worker. The others (per user, per address) are kept
in Redis when `REDIS_URL` is set, so every worker shares them; one Lua script reads and
updates every key of a check atomically, on Redis's clock, in one round trip. Without
Redis they are kept in this process (the embedded mode has one).

How it fails. While Redis cannot be reached (or answers an error), checks fail over to this
process's own counts: the chat keeps working, and each limit still holds per worker (at most
N times its rate with N workers). A warning is logged at most once a minute; Redis is tried
again after a few seconds. `RATE_LIMITS=off` turns every check into "allowed".
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass

import redis
from flask import current_app
from flask_babel import ngettext

from app.errors import RateLimited
from app.redis_client import app_redis

log = logging.getLogger(__name__)

# name -> default rates. `<what>.<scope>`: the scope says what the key is
DEFAULT_LIMITS: dict[str, str] = {
    "message.connection": "40/20s",
    "message.user": "60/30s",
    "join.connection": "30/60s",
    "join.user": "60/60s",
    "leave.connection": "30/60s",
    "leave.user": "60/60s",
    "signup.address": "30/hour",
    "login.address": "60/10min",
    "create_room.user": "10/10min",
}

_UNITS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
}  # fmt: skip
_RATE_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*")
REDIS_RETRY_AFTER = 5.0  # seconds before Redis is tried again after a failure
WARN_EVERY = 60.0


@dataclass(frozen=True)
class Rate:
    """`count` requests per `period` seconds: a burst of `count`, then one every period/count."""

    count: int
    period: float

    @property
    def interval(self) -> float:
        return self.period / self.count

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"


def parse_rates(text: str) -> tuple[Rate, ...]:
    """`"40/20s"`, `"10/minute"`, `"5/second;100/hour"`; `"off"` (or empty) is no limit."""
    text = (text or "").strip().lower()
    if text in {"", "off", "none"}:
        return ()
    rates = []
    for part in re.split(r"[;,]", text):
        match = _RATE_RE.fullmatch(part)
        if not match or match.group(3) not in _UNITS:
            raise ValueError(f"{part.strip()!r} is not a rate like 40/20s, 10/minute or 5/hour")
        count, times, unit = int(match.group(1)), float(match.group(2) or 1), match.group(3)
        period = times * _UNITS[unit]
        if count < 1 or period <= 0:
            raise ValueError(f"{part.strip()!r}: the count and the period must be positive")
        rates.append(Rate(count, period))
    return tuple(rates)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds; 0 when allowed


ALLOWED = Decision(True)

# (full key, rate) pairs; full key = "<name>:<rate>:<key>" so a changed rate starts afresh
Slot = tuple[str, Rate]


class MemoryStore:
    """GCRA state in this process: key -> theoretical arrival time (monotonic seconds)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def check(self, slots: list[Slot], commit: bool = True) -> Decision:
        with self._lock:
            now = self.clock()
            if now >= self._next_sweep:
                self._sweep(now)
            wait, updates = 0.0, []
            for key, rate in slots:
                tat = max(self._tat.get(key, now), now) + rate.interval
                excess = tat - rate.period - now
                wait = max(wait, excess)
                updates.append((key, tat))
            if wait > 0:
                return Decision(False, wait)
            if commit:
                self._tat.update(updates)
            return ALLOWED

    def _sweep(self, now: float) -> None:
        # a key whose time has passed is the same as no key: drop them, so the dict stays small
        self._tat = {k: t for k, t in self._tat.items() if t > now}
        self._next_sweep = now + 30.0


# KEYS: the keys; ARGV: interval and period in microseconds, per key. Redis's own clock,
# so workers with different clocks agree (TIME before a write needs Redis >= 5, which
# replicates a script's effects). Returns {1, 0} or {0, wait in microseconds}.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = tat + interval
  local excess = tat - period - now
  if excess > wait then wait = excess end
  tats[i] = tat
end
if wait > 0 then return {0, string.format('%.0f', wait)} end
for i = 1, #KEYS do
  local ttl = math.ceil((tats[i] - now) / 1000)
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
end
return {1, 0}
"""


class RedisStore:
    """GCRA state in Redis, shared by every worker: one EVALSHA per check."""

    def __init__(self, url: str, prefix: str = "flask-chat:rl:"):
        self.prefix = prefix
        # short timeouts: a Redis that hangs must not hang the chat (see the module docstring)
        self.client = app_redis(url)
        self.script = self.client.register_script(_GCRA_LUA)

    def check(self, slots: list[Slot]) -> Decision:
        keys = [self.prefix + key for key, _ in slots]
        args: list[int] = []
        for _, rate in slots:
            args += [round(rate.interval * 1e6), round(rate.period * 1e6)]
        allowed, wait = self.script(keys=keys, args=args)
        if int(allowed):
            return ALLOWED
        return Decision(False, int(wait) / 1e6)


class Limiter:
    """The app's limits: `limiter.check(("message.user", user_id), ("message.connection", sid))`.

    One per app (`app.extensions["limiter"]`); see the module docstring for the guarantee.
    """

    def __init__(
        self,
        rules: dict[str, tuple[Rate, ...]],
        enabled: bool = True,
        redis_url: str = "",
    ):
        self.rules = rules
        self.enabled = enabled
        self.local = MemoryStore()
        self.shared = RedisStore(redis_url) if (redis_url and enabled) else None
        self._redis_down_until = 0.0
        self._next_warning = 0.0

    def check(self, *checks: tuple[str, object]) -> Decision:
        """Count one request against each (limit name, key); all of them, or none."""
        if not self.enabled:
            return ALLOWED
        local: list[Slot] = []
        shared: list[Slot] = []
        for name, key in checks:
            for rate in self.rules.get(name, ()):
                slot = (f"{name}:{rate}:{key}", rate)
                scope = name.rsplit(".", 1)[-1]
                (local if scope == "connection" or self.shared is None else shared).append(slot)
        if not shared:
            return self.local.check(local)
        # peek at the local keys first: a refusal there costs no round trip
        decision = self.local.check(local, commit=False)
        if not decision.allowed:
            return decision
        decision = self._check_shared(shared)
        if decision.allowed:
            # another event of this connection may have slipped in meanwhile: admit anyway
            self.local.check(local)
        return decision

    def _check_shared(self, slots: list[Slot]) -> Decision:
        now = time.monotonic()
        if now >= self._redis_down_until:
            try:
                return self.shared.check(slots)
            except redis.RedisError as exc:
                self._redis_down_until = now + REDIS_RETRY_AFTER
                if now >= self._next_warning:
                    self._next_warning = now + WARN_EVERY
                    log.warning(
                        "rate limits: Redis unreachable (%s); counting in this worker only",
                        exc.__class__.__name__,
                    )
        return self.local.check(slots)


def rules_from(texts: dict[str, str]) -> dict[str, tuple[Rate, ...]]:
    return {name: parse_rates(text) for name, text in texts.items()}


def whole_seconds(retry_after: float) -> int:
    """What to tell people (and the Retry-After header): never 0 while refused."""
    return max(1, math.ceil(retry_after))


def enforce(*checks: tuple[str, object]) -> None:
    """Count one request of the current app against each (limit, key); RateLimited if refused.

    The refusal's detail says how long to wait, in the user's language.
    """
    decision = current_app.extensions["limiter"].check(*checks)
    if not decision.allowed:
        raise RateLimited(wait_message(decision.retry_after), decision.retry_after)


def wait_message(retry_after: float) -> str:
    seconds = whole_seconds(retry_after)
    if seconds < 120:
        return ngettext(
            "Too many requests. Try again in %(num)d second.",
            "Too many requests. Try again in %(num)d seconds.",
            seconds,
        )
    return ngettext(
        "Too many requests. Try again in %(num)d minute.",
        "Too many requests. Try again in %(num)d minutes.",
        math.ceil(seconds / 60),
    )
