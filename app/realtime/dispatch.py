"""How a client event reaches its handler: straight from python-socketio, no Flask request.

Flask-SocketIO runs every event inside a full Flask request context: it rebuilds a request
from the handshake's environ, opens and HMAC-checks the cookie session only to replace it,
and Flask-Login loads the user and the login session from the database. Per event that cost
more than storing the message. Only `connect` needs any of it, so only `connect` (and
`disconnect`) go through Flask-SocketIO; the client events (`join`, `leave`, `message`) are
registered here on python-socketio's server directly, and each runs with:

- **the user resolved once per connection**: the connection registry's record
  (app/realtime/connections.py), written by `connect` after Flask-Login checked the session
  cookie. The registry closes the connection when its session ends (logout, password change,
  log out everywhere: within a second on every worker) or expires (checked every second), and
  an event from a connection it no longer holds is refused with `unauthorized`;
- **an app context**, pushed per event (the database session and the settings), in the
  language the page had when it connected (`Connection.locale`) for any refusal's `detail`;
- **its rate limits** (`limit="message"` counts `message.user` and `message.connection`);
  a client event cannot be declared without one;
- **refusals as acks**: a ServiceError becomes `{ok: false, error, detail}`, anything
  unexpected is logged and acked `internal`; the database session is rolled back either way.

Handlers receive an `Event` (the sid, the connection, the server) and the payload, and return
the ack. The server runs them in the connection's own reader (`async_handlers=False`): one
client's events are handled in the order it sent them.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from flask import Flask
from flask_babel import force_locale
from flask_babel import gettext as _

from app.errors import ServiceError
from app.extensions import db
from app.i18n import DEFAULT_LOCALE as DEFAULT
from app.limits import enforce
from app.realtime.connections import Connection, registry

log = logging.getLogger(__name__)

NAMESPACE = "/"


class Author(NamedTuple):
    id: int
    username: str


@dataclass(frozen=True)
class Event:
    """What a handler knows about the event it handles."""

    sid: str
    conn: Connection
    server: object  # socketio.Server
    settings: object  # app.config.Settings

    @property
    def user_id(self) -> int:
        return self.conn.user_id

    @property
    def username(self) -> str:
        return self.conn.username

    @property
    def author(self) -> Author:
        """The user, as the service layer takes an author (`.id`, `.username`)."""
        return Author(self.conn.user_id, self.conn.username)

    def in_room(self, key: str) -> bool:
        return key in self.server.rooms(self.sid, namespace=NAMESPACE)

    def enter_room(self, key: str) -> None:
        self.server.enter_room(self.sid, key, namespace=NAMESPACE)

    def leave_room(self, key: str) -> None:
        self.server.leave_room(self.sid, key, namespace=NAMESPACE)

    def emit(self, event: str, data, *, to: str) -> None:
        """Send to a Socket.IO room on every worker (through the message queue)."""
        self.server.emit(event, data, to=to, namespace=NAMESPACE)


Handler = Callable[[Event, dict], dict]
# event name -> (handler, the name of its rate limits)
CLIENT_EVENTS: dict[str, tuple[Handler, str]] = {}


def client_event(name: str, *, limit: str):
    """Declare the handler of client event `name`, counted against the limits `<limit>.*`."""

    def register(handler: Handler) -> Handler:
        CLIENT_EVENTS[name] = (handler, limit)
        return handler

    return register


def install(app: Flask, server) -> None:
    """Register every declared client event on this app's python-socketio server."""
    for name, (handler, limit) in CLIENT_EVENTS.items():
        server.on(name, _dispatcher(app, server, handler, limit), namespace=NAMESPACE)


def _dispatcher(app: Flask, server, handler: Handler, limit: str):
    settings = app.config["CHAT"]
    user_limit, connection_limit = f"{limit}.user", f"{limit}.connection"

    @functools.wraps(handler)
    def dispatch(sid: str, data=None, *_extra):
        conn = registry.local.get(sid)
        with app.app_context(), force_locale(conn.locale if conn and conn.locale else DEFAULT):
            return _handle(conn, sid, data)

    def _handle(conn: Connection | None, sid: str, data) -> dict:
        if conn is None or conn.deadline <= time.time():
            return ServiceError("unauthorized", _("Your session ended; log in.")).to_ack()
        if not isinstance(data, dict):
            return ServiceError("bad_request", _("The payload must be an object.")).to_ack()
        try:
            enforce((user_limit, conn.user_id), (connection_limit, sid))
            return handler(Event(sid, conn, server, settings), data)
        except ServiceError as exc:
            db.session.rollback()
            return exc.to_ack()
        except Exception:
            db.session.rollback()
            log.exception("socket event %s failed", handler.__name__)
            return ServiceError("internal", _("Something went wrong; try again.")).to_ack()

    return dispatch
