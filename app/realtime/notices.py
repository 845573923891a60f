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
   process otherwise. A notice held back is not sent later: notices are informational,
   the room's history and its messages are the record.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import current_app, request

from app.extensions import socketio

log = logging.getLogger(__name__)

_EXTENSION = "flask_chat_notice_gate"


def presence_key(room_id: int, user_id: int) -> str:
    """This worker's Socket.IO room of one user's connections in one chat room."""
    return f"presence:{room_id}:{user_id}"


def others_here(room_id: int, user_id: int) -> bool:
    """Whether another connection of this user is in the room on this worker."""
    participants = socketio.server.manager.get_participants("/", presence_key(room_id, user_id))
    return any(sid != request.sid for sid, _eio_sid in participants)


def may_announce(room_id: int, user_id: int) -> bool:
    """True at most once per user and room every NOTICE_INTERVAL seconds (on every worker)."""
    gate = current_app.extensions.get(_EXTENSION)
    if gate is None:
        settings = current_app.config["CHAT"]
        gate = NoticeGate(settings.notice_interval, settings.redis_url)
        current_app.extensions[_EXTENSION] = gate
    return gate.allow(f"{room_id}:{user_id}")


class NoticeGate:
    """Lets one key through per `interval` seconds; Redis-shared when a URL is given."""

    PRUNE_AT = 10_000  # keys kept in the process before expired ones are dropped

    def __init__(self, interval: int, redis_url: str = ""):
        self.interval = interval
        self._redis = None
        if redis_url and interval:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=1, socket_connect_timeout=1
            )
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        if not self.interval:
            return True
        if self._redis is not None:
            import redis

            try:
                return bool(
                    self._redis.set(f"flask-chat:notice:{key}", 1, nx=True, ex=self.interval)
                )
            except redis.RedisError as exc:
                log.debug("notice gate: Redis unavailable (%s), deciding locally", exc)
        return self._allow_here(key)

    def _allow_here(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._until.get(key, 0) > now:
                return False
            if len(self._until) >= self.PRUNE_AT:
                self._until = {k: t for k, t in self._until.items() if t > now}
            self._until[key] = now + self.interval
            return True
