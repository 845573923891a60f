"""Clean shutdown of a worker: refuse new work, then tell every Socket.IO client to go.

The gunicorn config (deploy/gunicorn.conf.py) calls these on SIGTERM; the clients reconnect
through nginx to another worker and re-join with `since`.
"""

from __future__ import annotations

import json
import logging

from app.extensions import socketio

log = logging.getLogger(__name__)

_draining = False


class DrainingMiddleware:
    """While shutting down, answer every new request 503 and close the connection.

    nginx keeps idle connections to each worker open (upstream keepalive), so a closed
    listener alone does not stop new requests from arriving; a 503 does, and nginx retries
    the request on the next worker (`proxy_next_upstream ... http_503`).
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if not _draining:
            return self.wsgi_app(environ, start_response)
        body = json.dumps(
            {"ok": False, "error": "draining", "detail": "This worker is shutting down; retry."}
        ).encode()
        start_response(
            "503 Service Unavailable",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
                ("Retry-After", "1"),
            ],
        )
        return [body]


def start_draining() -> None:
    global _draining
    _draining = True


def close_all_connections() -> int:
    """Close every Engine.IO session of this process; returns how many were open.

    The transport is dropped without a goodbye packet (abort): every Socket.IO client
    treats that as a lost connection and reconnects, then re-joins with `since`. A polite
    close packet would make some clients (python-socketio) give up instead of reconnecting.
    """
    start_draining()
    server = socketio.server
    if server is None:
        return 0
    sessions = list(server.eio.sockets.values())
    log.info("shutting down: closing %d connections", len(sessions))
    for session in sessions:
        try:
            session.close(wait=False, abort=True)
        except Exception:  # noqa: BLE001 - one broken socket must not keep the others open
            log.exception("closing a connection during shutdown failed")
    return len(sessions)
