"""The stored data: accounts, their login sessions, rooms and messages."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

# key columns: a skeleton can be longer than the name (casefold "ß" -> "ss", "m" -> "rn")
KEY_MAX = 128
SKELETON_MAX = 300
ROOM_SKELETON_MAX = 720


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_username_skeleton", "username_skeleton", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))  # NFKC, as typed otherwise
    # what a login looks the name up by: NFKC + casefold (app/text.py:lookup_key)
    username_key: Mapped[str] = mapped_column(String(KEY_MAX), unique=True)
    # what must be unique: the confusable skeleton, so look-alike names are taken
    username_skeleton: Mapped[str] = mapped_column(String(SKELETON_MAX))
    password: Mapped[str] = mapped_column(String(255))  # an argon2id hash, never clear text
    email: Mapped[str] = mapped_column(String(254))
    idade: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # set when loaded through a login session; Flask-Login stores the token in the cookie
    session_token = None
    login_session = None  # the LoginSession row it was loaded through

    def get_id(self) -> str | None:
        return self.session_token


class LoginSession(db.Model):
    """One logged-in browser. Logging out deletes it, so an old cookie is worthless.

    The cookie carries the token; only its SHA-256 is stored, so a copy of the database
    cannot be replayed as cookies. A session ends after `SESSION_IDLE_TIMEOUT` without use
    (`last_seen_at`, touched about once a minute) or `SESSION_MAX_AGE` after the login.
    """

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_agent: Mapped[str] = mapped_column(String(255), default="")

    user: Mapped[User] = relationship()


class LoginFailure(db.Model):
    """A failed login, kept for the throttle window (app/accounts/service.py)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_user_address", "username_key", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username_key: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Chat(db.Model):
    """A chat room. `last_seq` is the seq of its newest message (0 when empty)."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    # the confusable skeleton of the name (app/text.py:skeleton): look-alike names are taken
    name_key: Mapped[str] = mapped_column(String(ROOM_SKELETON_MAX), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("chat_id", "seq", name="uq_messages_chat_seq"),
        # a client's retry of the same message in the same room is stored once
        UniqueConstraint("user_id", "chat_id", "client_id", name="uq_messages_user_chat_client_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    seq: Mapped[int]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_wire(self) -> dict:
        return message_wire(self)


def message_wire(message) -> dict:
    """The shape of a message on the wire, for broadcasts and the history API: of a `Message`
    row, or of anything with its columns (app/rooms/commits.py's `StoredMessage`)."""
    return {
        "id": message.id,
        "seq": message.seq,
        "room": message.chat_id,
        "username": message.username,
        "message": message.message,
        "created_at": message.created_at.isoformat(timespec="milliseconds") + "Z",
        "client_id": message.client_id,
    }
