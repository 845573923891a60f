"""Account rules: validation, password hashing, login sessions. Used by the HTTP views."""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.errors import InvalidInput
from app.extensions import db
from app.models import LoginSession, User

USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
IDADE_MIN, IDADE_MAX = 13, 120

# OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane
password_hasher = PasswordHasher(
    time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)
# checked against when the username is unknown, so both failures take as long
_DUMMY_HASH = password_hasher.hash(secrets.token_urlsafe(16))


def register(username: str, password: str, email: str, idade: str | int) -> User:
    """Create an account or raise InvalidInput naming each wrong field."""
    username = (username or "").strip()
    email = (email or "").strip()
    errors: dict[str, str] = {}
    if not USERNAME_RE.fullmatch(username):
        errors["username"] = _(
            "Username must be 3 to 32 characters: letters, digits, underscore, dot or hyphen."
        )
    if not PASSWORD_MIN <= len(password or "") <= PASSWORD_MAX:
        errors["password"] = _(
            "Password must be %(low)d to %(high)d characters long.",
            low=PASSWORD_MIN,
            high=PASSWORD_MAX,
        )
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError:
        errors["email"] = _("Enter a valid email address, like name@example.com.")
    age = _parse_idade(idade)
    if age is None:
        errors["idade"] = _(
            "Age must be a whole number from %(low)d to %(high)d.", low=IDADE_MIN, high=IDADE_MAX
        )
    if "username" not in errors and _username_taken(username):
        errors["username"] = _("That username is taken.")
    if errors:
        raise InvalidInput(errors)

    user = User(
        username=username,
        username_key=username.lower(),
        password=password_hasher.hash(password),
        email=email,
        idade=age,
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        # someone took the name between our check and the insert
        db.session.rollback()
        raise InvalidInput({"username": _("That username is taken.")}) from None
    return user


def authenticate(username: str, password: str) -> User | None:
    """The user whose password matches, or None; unknown user and wrong password look alike."""
    key = (username or "").strip().lower()
    user = db.session.scalar(select(User).where(User.username_key == key)) if key else None
    try:
        password_hasher.verify(user.password if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if password_hasher.check_needs_rehash(user.password):
        user.password = password_hasher.hash(password)
        db.session.commit()
    return user


def start_session(user: User) -> str:
    """Record a new login session for `user` and return its token."""
    token = secrets.token_urlsafe(32)
    db.session.add(LoginSession(token=token, user_id=user.id))
    db.session.commit()
    user.session_token = token
    return token


def load_session_user(token: str) -> User | None:
    """The user behind a session token, or None once that session has ended."""
    if not token:
        return None
    row = db.session.execute(
        select(User)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(LoginSession.token == token)
    ).scalar_one_or_none()
    if row is not None:
        row.session_token = token
    return row


def end_session(token: str | None) -> None:
    if token:
        db.session.execute(delete(LoginSession).where(LoginSession.token == token))
        db.session.commit()


def _username_taken(username: str) -> bool:
    return (
        db.session.scalar(select(User.id).where(User.username_key == username.lower())) is not None
    )


def _parse_idade(value: str | int) -> int | None:
    text = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"[0-9]{1,3}", text):
        return None
    age = int(text)
    return age if IDADE_MIN <= age <= IDADE_MAX else None
