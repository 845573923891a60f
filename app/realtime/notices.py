"""When a join/leave notice is worth sending: the rule of docs/protocol.md ("Notices").

A user's notice goes to a room only when it is news there:

1. **Presence on this worker.** Each connection in a room is also in the Socket.IO room
   `presence:<room>:<user id>` of its worker (Socket.IO empties it when the connection
   ends). A join is news only when no other connection of that user is in it; a leave or a
   disconnect only when none is left. Other workers' connections are not looked at: that
   would need a shared presence table, and the coalescing below covers what is left.
2. **Coalescing.** At most one notice (join or leave) per user and room every
   NOTICE_INTERVAL seconds: a Redis `SET key NX EX interval` shared by every worker when
   REDIS_URL is set (an unreachable Redis falls back to this process), a dictionary in the
   process otherwise. A notice held back is not lost: when the interval is over, the
   worker that held it back sends the user's state in the room then (present on this
   worker or not), unless it is what the last notice said. So a storm of joins and leaves
   ends with one notice that tells how it ended.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import current_app

from app.extensions import socketio
from app.redis_client import app_redis

log = logging.getLogger(__name__)

_EXTENSION = "flask_chat_notice_gate"
_LAST_SENT_SECONDS = 24 * 3600  # how long the kind of the last notice sent is remembered


def presence_key(room_id: int, user_id: int) -> str:
    """This worker's Socket.IO room of one user's connections in one chat room."""
    return f"presence:{room_id}:{user_id}"


def announce(room_id: int, user_id: int, username: str, kind: str, to: str, sid: str) -> None:
    """Send `notice {room, kind, username}` to the Socket.IO room `to` (connection `sid`
    excluded) if it is news now; else, if held back by the interval, settle it later."""
    server = socketio.server
    if _present(server, room_id, user_id, besides=sid):
        return  # another connection of this user is (still) in the room on this worker
    gate = _gate()
    key = f"{room_id}:{user_id}"
    notice = {"room": room_id, "kind": kind, "username": username}
    if gate.try_send(key, kind):
        server.emit("notice", notice, to=to, skip_sid=sid)
        return
    gate.settle_later(key, lambda: _settle(server, gate, key, notice, to))


def _settle(server, gate: NoticeGate, key: str, notice: dict, to: str) -> bool:
    """After an interval: send the user's state now if the last notice said otherwise.

    True when settled (sent, or nothing to send); False to try again after the next interval.
    """
    room_id, user_id = notice["room"], int(key.split(":")[1])
    kind = "join" if _present(server, room_id, user_id) else "leave"
    if gate.last_sent(key) == kind:
        return True
    if not gate.try_send(key, kind):
        return False
    server.emit("notice", {**notice, "kind": kind}, to=to)
    return True


def _present(server, room_id: int, user_id: int, besides: str | None = None) -> bool:
    participants = server.manager.get_participants("/", presence_key(room_id, user_id))
    return any(sid != besides for sid, _eio_sid in participants)


def _gate() -> NoticeGate:
    gate = current_app.extensions.get(_EXTENSION)
    if gate is None:
        settings = current_app.config["CHAT"]
        gate = NoticeGate(settings.notice_interval, settings.redis_url)
        current_app.extensions[_EXTENSION] = gate
    return gate


class NoticeGate:
    """One notice per key and `interval` seconds, Redis-shared when a URL is given; keeps
    the kind of the last notice sent, and settles held-back notices after the interval."""

    PRUNE_AT = 10_000  # keys kept in the process before expired ones are dropped
    SETTLE_ROUNDS = 3  # intervals a held-back notice waits for its turn at most

    def __init__(self, interval: int, redis_url: str = ""):
        self.interval = interval
        self._redis = None
        if redis_url and interval:
            self._redis = app_redis(redis_url)
        self._until: dict[str, float] = {}
        self._last: dict[str, str] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def try_send(self, key: str, kind: str) -> bool:
        """Take the key's turn for a notice of `kind`; False while an interval runs."""
        if not self.interval:
            return True
        if self._redis is not None:
            import redis

            try:
                if not self._redis.set(f"flask-chat:notice:{key}", kind, nx=True, ex=self.interval):
                    return False
                self._redis.set(f"flask-chat:notice-last:{key}", kind, ex=_LAST_SENT_SECONDS)
                return True
            except redis.RedisError as exc:
                log.debug("notice gate: Redis unavailable (%s), deciding locally", exc)
        return self._try_here(key, kind)

    def last_sent(self, key: str) -> str | None:
        if self._redis is not None:
            import redis

            try:
                value = self._redis.get(f"flask-chat:notice-last:{key}")
                return value.decode() if value else None
            except redis.RedisError:
                pass
        with self._lock:
            return self._last.get(key)

    def settle_later(self, key: str, settle) -> None:
        """Run `settle()` once this key's interval is over (once per key at a time), again
        after each further interval while it returns False, at most SETTLE_ROUNDS times."""
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
        socketio.start_background_task(self._settle_loop, key, settle)

    def _settle_loop(self, key: str, settle) -> None:
        try:
            for _ in range(self.SETTLE_ROUNDS):
                socketio.sleep(self._wait(key) + 0.05)
                if settle():
                    return
        except Exception:  # noqa: BLE001 - a background task: log, never raise
            log.exception("settling a held-back notice failed")
        finally:
            with self._lock:
                self._pending.discard(key)

    def _wait(self, key: str) -> float:
        """Seconds until the key's interval is over."""
        if self._redis is not None:
            import redis

            try:
                ms = self._redis.pttl(f"flask-chat:notice:{key}")
                return max(ms, 0) / 1000
            except redis.RedisError:
                pass
        with self._lock:
            return max(self._until.get(key, 0) - time.monotonic(), 0)

    def _try_here(self, key: str, kind: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._until.get(key, 0) > now:
                return False
            if len(self._until) >= self.PRUNE_AT:
                self._until = {k: t for k, t in self._until.items() if t > now}
                self._last = {k: v for k, v in self._last.items() if k in self._until}
            self._until[key] = now + self.interval
            self._last[key] = kind
            return True
