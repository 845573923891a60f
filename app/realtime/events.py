"""Socket.IO event handlers. The wire protocol is written down in docs/protocol.md.

Handlers validate the payload, call one service function and shape the ack. A
handler's return value is the ack; refusals are `{ok: false, error, detail}` and
store nothing.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC

from flask import current_app, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, emit, join_room, leave_room, rooms

from app.errors import ServiceError
from app.extensions import db, socketio
from app.limits import enforce
from app.realtime import connections, notices
from app.rooms import service

log = logging.getLogger(__name__)


def room_key(room_id: int) -> str:
    """The Socket.IO room that carries a chat's broadcasts."""
    return f"chat:{room_id}"


def acked(handler):
    """Turn a handler's refusals into error acks; an unexpected failure is logged, never raised."""

    @functools.wraps(handler)
    def wrapper(data=None, *_extra):
        if not current_user.is_authenticated:
            return {
                "ok": False,
                "error": "unauthorized",
                "detail": _("Your session ended; log in."),
            }
        if not isinstance(data, dict):
            return ServiceError("bad_request", _("The payload must be an object.")).to_ack()
        try:
            return handler(data)
        except ServiceError as exc:
            db.session.rollback()
            return exc.to_ack()
        except Exception:
            db.session.rollback()
            log.exception("socket event %s failed", handler.__name__)
            return {
                "ok": False,
                "error": "internal",
                "detail": _("Something went wrong; try again."),
            }

    return wrapper


def rate_limited(name: str):
    """Count each event against the limits `<name>.user` and `<name>.connection`.

    Every client event declares one (tests/unit/test_limiter.py checks it). A refusal is the
    ack `{ok: false, error: "rate_limited", detail, retry_after}` and the handler never runs:
    nothing is stored or broadcast. Goes below `acked`, which has checked the login.
    """

    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(data: dict):
            enforce((f"{name}.user", current_user.id), (f"{name}.connection", request.sid))
            return handler(data)

        wrapper.rate_limit = name
        return wrapper

    return decorate


def announce(room_id: int, kind: str) -> None:
    """Tell the room's others this user joined or left, when that is news (realtime/notices.py)."""
    notices.announce(room_id, current_user.id, current_user.username, kind, room_key(room_id))


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
            notices.announce(int(key[5:]), conn.user_id, conn.username, "leave", key)


@socketio.on("join")
@acked
@rate_limited("join")
def on_join(data: dict):
    """Client sends `join {room, since?}`.

    Ack: `{ok, room, worker, messages, more}` with the last messages, or those after
    `since`. Others in the room get `notice {room, kind: "join", username}`.
    """
    settings = current_app.config["CHAT"]
    room_id = service.parse_room_id(data.get("room"))
    since = data.get("since")
    if since is not None:
        since = service.parse_since(since)
    service.get_room(room_id)

    key = room_key(room_id)
    already_in = key in rooms()
    # join before reading so nothing posted in between is missed (it may come twice: dedupe by id)
    join_room(key)
    if since is None:
        page = service.recent_messages(
            room_id, settings.history_on_join, max_bytes=settings.reply_max_bytes
        )
    else:
        page = service.messages_since(
            room_id, since, settings.since_cap, max_bytes=settings.reply_max_bytes
        )
    if not already_in:
        announce(room_id, "join")
        join_room(notices.presence_key(room_id, current_user.id))
    return {
        "ok": True,
        "room": room_id,
        "worker": settings.worker_id,
        "messages": [m.to_wire() for m in page.messages],
        "more": page.more,
    }


@socketio.on("leave")
@acked
@rate_limited("leave")
def on_leave(data: dict):
    """Client sends `leave {room}`. Ack `{ok: true}`; others get `notice {kind: "leave"}`."""
    room_id = service.parse_room_id(data.get("room"))
    key = room_key(room_id)
    if key in rooms():
        leave_room(key)
        leave_room(notices.presence_key(room_id, current_user.id))
        announce(room_id, "leave")
    return {"ok": True}


@socketio.on("message")
@acked
@rate_limited("message")
def on_message(data: dict):
    """Client sends `message {room, message, client_id?}`; only members of the room may post.

    The stored message is broadcast as `message {id, seq, room, username, message,
    created_at, client_id}` to the whole room, sender included. Ack `{ok, id, seq}`;
    a retry with the same client_id is acked with the stored id and not broadcast again.
    """
    room_id = service.parse_room_id(data.get("room"))
    if room_key(room_id) not in rooms():
        service.get_room(room_id)  # no_such_room wins over not_member
        raise ServiceError(
            "not_member", _("Join room %(room)s before posting to it.", room=room_id)
        )
    posted = service.post_message(
        current_user,
        room_id,
        data.get("message"),
        data.get("client_id"),
        max_length=current_app.config["CHAT"].message_max_length,
        max_bytes=current_app.config["CHAT"].message_max_bytes,
    )
    wire = posted.message.to_wire()
    if posted.created:
        emit("message", wire, to=room_key(room_id))
    return {"ok": True, "id": wire["id"], "seq": wire["seq"]}


@socketio.on_error_default
def on_unhandled_error(exc):  # pragma: no cover - acked() catches everything first
    log.exception("unhandled socket error: %s", exc)
    return {"ok": False, "error": "internal", "detail": _("Something went wrong; try again.")}
