"""Socket.IO event handlers. The wire protocol is written down in docs/protocol.md.

`connect` and `disconnect` run through Flask-SocketIO (a request context: the session
cookie, Flask-Login). The client events run through app/realtime/dispatch.py: the user comes
from the connection registry, once per connection. Handlers validate the payload, call one
service function and shape the ack. A handler's return value is the ack; refusals are
`{ok: false, error, detail}` and store nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC

from flask import request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, rooms

from app.errors import ServiceError
from app.extensions import socketio
from app.realtime import connections, notices
from app.realtime.dispatch import Event, client_event
from app.rooms import service

log = logging.getLogger(__name__)


def room_key(room_id: int) -> str:
    """The Socket.IO room that carries a chat's broadcasts."""
    return f"chat:{room_id}"


@socketio.on("connect")
def on_connect(auth=None):
    """Only logged-in users may connect (the session cookie); the Origin is checked by Engine.IO.

    Refused with `unauthorized` without a live login session, and with
    `too_many_connections` when the user or the client address already has as many open
    sockets as allowed (counted on every worker by the connection registry).
    """
    if not current_user.is_authenticated:
        raise ConnectionRefusedError("unauthorized")
    # imported here: the accounts service imports this package (to disconnect sockets)
    from app.accounts.service import session_deadline

    session_row = current_user.login_session
    refusal = connections.registry.register(
        request.sid,
        user_id=current_user.id,
        username=current_user.username,
        session_hash=session_row.token_hash,
        address=request.remote_addr or "unknown",
        deadline=session_deadline(session_row).replace(tzinfo=UTC).timestamp(),
        locale=get_locale(),
    )
    if refusal is not None:
        if refusal.scope == "user":
            detail = _(
                "You have %(limit)d connections open already; close a tab and retry.",
                limit=refusal.limit,
            )
        else:
            detail = _(
                "Too many connections from your network (%(limit)d); retry later.",
                limit=refusal.limit,
            )
        raise ConnectionRefusedError(
            "too_many_connections",
            {
                "error": "too_many_connections",
                "scope": refusal.scope,
                "limit": refusal.limit,
                "detail": detail,
            },
        )


@socketio.on("disconnect")
def on_disconnect(reason=None):
    """Tell the rooms this connection was in that its user left.

    The user comes from the connection registry, not the session: when a logout closes the
    socket, the session is already gone.
    """
    conn = connections.registry.unregister(request.sid)
    if conn is None:
        return
    for key in rooms():
        if key.startswith("chat:"):
            notices.announce(int(key[5:]), conn.user_id, conn.username, "leave", key, conn.sid)


def announce(event: Event, room_id: int, kind: str) -> None:
    """Tell the room's others this user joined or left, when that is news (realtime/notices.py)."""
    notices.announce(room_id, event.user_id, event.username, kind, room_key(room_id), event.sid)


@client_event("join", limit="join")
def on_join(event: Event, data: dict):
    """Client sends `join {room, since?}`.

    Ack: `{ok, room, worker, messages, more}` with the last messages, or those after
    `since`. Others in the room get `notice {room, kind: "join", username}`.
    """
    settings = event.settings
    room_id = service.parse_room_id(data.get("room"))
    since = data.get("since")
    if since is not None:
        since = service.parse_since(since)
    service.get_room(room_id)

    key = room_key(room_id)
    already_in = event.in_room(key)
    # join before reading so nothing posted in between is missed (it may come twice: dedupe by id)
    event.enter_room(key)
    if since is None:
        page = service.recent_messages(
            room_id, settings.history_on_join, max_bytes=settings.reply_max_bytes
        )
    else:
        page = service.messages_since(
            room_id, since, settings.since_cap, max_bytes=settings.reply_max_bytes
        )
    if not already_in:
        announce(event, room_id, "join")
        event.enter_room(notices.presence_key(room_id, event.user_id))
    return {
        "ok": True,
        "room": room_id,
        "worker": settings.worker_id,
        "messages": [m.to_wire() for m in page.messages],
        "more": page.more,
    }


@client_event("leave", limit="leave")
def on_leave(event: Event, data: dict):
    """Client sends `leave {room}`. Ack `{ok: true}`; others get `notice {kind: "leave"}`."""
    room_id = service.parse_room_id(data.get("room"))
    key = room_key(room_id)
    if event.in_room(key):
        event.leave_room(key)
        event.leave_room(notices.presence_key(room_id, event.user_id))
        announce(event, room_id, "leave")
    return {"ok": True}


@client_event("message", limit="message")
def on_message(event: Event, data: dict):
    """Client sends `message {room, message, client_id?}`; only members of the room may post.

    The stored message is broadcast as `message {id, seq, room, username, message,
    created_at, client_id}` to the whole room, sender included. Ack `{ok, id, seq}`;
    a retry with the same client_id is acked with the stored id and not broadcast again.
    """
    room_id = service.parse_room_id(data.get("room"))
    key = room_key(room_id)
    if not event.in_room(key):
        service.get_room(room_id)  # no_such_room wins over not_member
        raise ServiceError(
            "not_member", _("Join room %(room)s before posting to it.", room=room_id)
        )
    settings = event.settings
    posted = service.post_message(
        event.author,
        room_id,
        data.get("message"),
        data.get("client_id"),
        max_length=settings.message_max_length,
        max_bytes=settings.message_max_bytes,
    )
    wire = posted.message.to_wire()
    if posted.created:
        event.emit("message", wire, to=key)
    return {"ok": True, "id": wire["id"], "seq": wire["seq"]}


@socketio.on_error_default
def on_unhandled_error(exc):  # pragma: no cover - acked() catches everything first
    log.exception("unhandled socket error: %s", exc)
    return {"ok": False, "error": "internal", "detail": _("Something went wrong; try again.")}
