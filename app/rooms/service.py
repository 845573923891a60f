"""Room and message rules, written once for the HTTP views and the Socket.IO handlers.

Every message gets a unique `id` and a per-room `seq` (1, 2, 3, ... with no gaps, in
commit order): the transaction that stores it (a batch of posts, app/rooms/commits.py)
bumps `chats.last_seq` first, which takes the room's row lock (PostgreSQL) or the database
write lock (SQLite) until it commits, so writers to one room queue up and a rolled-back
batch gives its numbers back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import text
from app.codec import encoded_size
from app.errors import InvalidInput, NotFound, ServiceError
from app.extensions import db
from app.models import ROOM_SKELETON_MAX, Chat, Message, User
from app.rooms.commits import Committer, NewPost, NotStored, Posted, RoomMissing

__all__ = ["Page", "Posted"]  # Posted: what post_message returns (app/rooms/commits.py)

ROOM_NAME_MAX = 80
# ids and seqs are 32-bit integer columns: anything larger cannot name a row
MAX_ID = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")
CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    more: bool  # True when older (history) or newer (since) messages were left out


def create_room(user: User, name: str) -> Chat:
    """Create a room; its name must differ from every other's, look-alikes included."""
    name = name or ""
    if not text.is_storable(name) or text.has_format_characters(name):
        raise InvalidInput(
            {
                "chat_name": _(
                    "Room names cannot contain control characters or invisible formatting "
                    "characters (zero-width, text direction)."
                )
            }
        )
    name = text.normalize_name(name)
    if text.is_blank(name):
        raise InvalidInput({"chat_name": _("Give the room a name.")})
    key = text.skeleton(name[: ROOM_NAME_MAX + 1])
    if len(name) > ROOM_NAME_MAX or len(key) > ROOM_SKELETON_MAX:
        raise InvalidInput(
            {"chat_name": _("Room names are at most %(high)d characters.", high=ROOM_NAME_MAX)}
        )
    if db.session.scalar(select(Chat.id).where(Chat.name_key == key)) is not None:
        raise InvalidInput({"chat_name": _("A room with that name exists already.")})
    chat = Chat(name=name, name_key=key, created_by=user.id)
    db.session.add(chat)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput({"chat_name": _("A room with that name exists already.")}) from None
    return chat


def list_rooms() -> list[Chat]:
    """Every room, most recent activity first."""
    return list(
        db.session.scalars(select(Chat).order_by(Chat.last_activity_at.desc(), Chat.id.desc()))
    )


def get_room(room_id: int) -> Chat:
    chat = db.session.get(Chat, room_id)
    if chat is None:
        raise NotFound("no_such_room", _("There is no room %(room)s.", room=room_id))
    return chat


def parse_room_id(value) -> int:
    """A room id from the wire: a number, or a string of digits."""
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    raise ServiceError("bad_request", _("room must be a room id (a number)."))


def parse_since(value) -> int:
    """The `since` cursor from the wire: a seq, a whole number from 0."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return value
    raise ServiceError("bad_request", _("since must be a seq: a whole number of 0 or more."))


def post_message(
    author,
    room_id: int,
    message,
    client_id=None,
    *,
    max_length: int,
    max_bytes: int | None = None,
) -> Posted:
    """Store a message in a room and return it once committed; a retry with the same
    client_id (same author, same room) is stored once. `max_length` counts characters,
    `max_bytes` UTF-8 bytes.

    `author` is anything with `.id` and `.username` (the ORM `User`, a connection record).
    The checks below read no database; the post is then stored by the app's committer
    (app/rooms/commits.py: batched with other posts under gevent, inline otherwise).
    Needs an app context, not a request context.
    """
    if not isinstance(message, str):
        raise ServiceError("bad_request", _("message must be text."))
    if client_id is not None and (
        not isinstance(client_id, str) or not CLIENT_ID_RE.fullmatch(client_id)
    ):
        raise ServiceError(
            "bad_request", _("client_id must be 1 to 64 letters, digits or the characters _ . : -")
        )
    # the cheap length check first: the others read every character
    if len(message) > max_length:
        raise ServiceError(
            "too_long",
            _(
                "The message is %(length)d characters; the limit is %(limit)d.",
                length=len(message),
                limit=max_length,
            ),
        )
    if not text.is_storable(message, multiline=True):
        raise ServiceError(
            "bad_request",
            _(
                "The message contains characters that cannot be sent (control characters "
                "or broken UTF-16)."
            ),
        )
    if text.is_blank(message):
        raise ServiceError("empty", _("The message is empty."))
    size = text.utf8_length(message)
    if max_bytes is not None and size > max_bytes:
        raise ServiceError(
            "too_long",
            _(
                "The message is %(size)d bytes long; the limit is %(limit)d bytes "
                "(emoji and some alphabets take up to 4 bytes a character).",
                size=size,
                limit=max_bytes,
            ),
        )

    # plain values first: the commit below expires an ORM author's attributes
    post = NewPost(author.id, author.username, room_id, message, client_id)
    # end the caller's transaction (as storing through the session did): a caller waiting
    # for its batch must not hold a pooled connection the committer or others may need
    db.session.commit()
    outcome = _committer().submit(db.engine, post)
    if isinstance(outcome, RoomMissing):
        raise NotFound("no_such_room", _("There is no room %(room)s.", room=room_id))
    if isinstance(outcome, Exception):
        raise NotStored("the message was not stored") from outcome
    # objects the caller loaded meanwhile may show the room as it was before this post
    db.session.expire_all()
    return outcome


def _committer() -> Committer:
    """The app's post committer (app/rooms/commits.py; made in app/factory.py)."""
    return current_app.extensions["post_committer"]


def recent_messages(room_id: int, limit: int, *, max_bytes: int) -> Page:
    """The newest messages of a room that fit the caps (see `history_before`), oldest first."""
    return history_before(room_id, None, limit, max_bytes=max_bytes)


def history_before(room_id: int, before: int | None, limit: int, *, max_bytes: int) -> Page:
    """Messages with seq < before (all when None), oldest first: the newest of them, at most
    `limit`, and at most `max_bytes` of wire JSON (always one at least).

    `more` is true when older ones were left out; the next page is `before` = the smallest
    seq of this one, so paging back returns each message exactly once.
    """
    query = select(Message).where(Message.chat_id == room_id)
    if before is not None:
        query = query.where(Message.seq < before)
    rows, more = _capped(query.order_by(Message.seq.desc()), limit, max_bytes)
    return Page(messages=rows[::-1], more=more)


def messages_since(room_id: int, since: int, limit: int, *, max_bytes: int) -> Page:
    """Messages with seq > since, oldest first: at most `limit` of them and at most
    `max_bytes` of wire JSON (always one at least).

    `more` is true when newer ones were left out; the next page is `since` = the greatest
    seq of this one, so catching up returns each message exactly once.
    """
    query = select(Message).where(Message.chat_id == room_id, Message.seq > since)
    return Page(*_capped(query.order_by(Message.seq), limit, max_bytes))


def _capped(query, limit: int, max_bytes: int) -> tuple[list[Message], bool]:
    """The leading rows of `query` within both caps, and whether any row was left out.

    Bytes are those of the messages' wire JSON as a list (`codec.encoded_size`), so an
    answer is at most `max_bytes` plus its small envelope; a single message larger than
    the cap still goes alone, so paging always moves on. Rows are read in batches and the
    reading stops at the cap: a room of large messages is not loaded whole to be cut.
    """
    kept: list[Message] = []
    used = 2  # the brackets of the list
    result = db.session.scalars(query.limit(limit + 1).execution_options(yield_per=64))
    try:
        for row in result:
            size = encoded_size(row.to_wire()) + 1  # and its comma
            if len(kept) == limit or (kept and used + size > max_bytes):
                return kept, True
            kept.append(row)
            used += size
        return kept, False
    finally:
        result.close()
