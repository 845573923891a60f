"""Clean shutdown of a worker: every Socket.IO client is told to go, so it reconnects elsewhere."""

from __future__ import annotations

import logging

from app.extensions import socketio

log = logging.getLogger(__name__)


def close_all_connections() -> int:
    """Close every Engine.IO session of this process; returns how many were open.

    The transport is dropped without a goodbye packet (abort): every Socket.IO client
    treats that as a lost connection and reconnects, then re-joins with `since`. A polite
    close packet would make some clients (python-socketio) give up instead of reconnecting.
    """
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
