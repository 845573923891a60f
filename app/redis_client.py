"""The app's own Redis client: one per process and URL, shared by every part that keeps keys.

The rate limiter (`app/limits.py`), the connection registry (`app/realtime/connections.py`),
the notice gate (`app/realtime/notices.py`) and `/readyz` all talk to the same Redis as the
Socket.IO message queue, but through this client, not the queue's (python-socketio owns
that one). Sharing it keeps one connection pool per worker instead of one per part.

Timeouts are short on purpose: every caller treats a Redis that hangs like one that is
down (each says how it carries on without it), so a hung Redis must not hang a request.
"""

from __future__ import annotations

import threading

import redis

TIMEOUT_SECONDS = 1.0

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def app_redis(url: str) -> redis.Redis:
    """The process's client for `url` (made on first use; redis-py reconnects after a fork)."""
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(
                    url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
                )
                _clients[url] = client
    return client
