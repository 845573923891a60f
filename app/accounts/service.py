"""Account rules: validation, password hashing, login sessions. Used by the HTTP views."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app, has_app_context
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from zxcvbn import zxcvbn

from app import text
from app.db import execute_first_write
from app.errors import InvalidInput, ServiceError
from app.extensions import db
from app.models import KEY_MAX, SKELETON_MAX, LoginFailure, LoginSession, User, utcnow
from app.offload import CpuPool
from app.realtime import connections

PASSWORD_MIN, PASSWORD_MAX = 8, 128
PASSWORD_MIN_SCORE = 2  # zxcvbn's 0-4 scale: see _guessable
ZXCVBN_INPUT_MAX = 64
IDADE_MIN, IDADE_MAX = 13, 120
# the login throttle: failures counted per username+address and per address, in a window
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_FAILURES_PER_NAME = 10
LOGIN_FAILURES_PER_ADDRESS = 50

# OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane
password_hasher = PasswordHasher(
    time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)
# checked against when the username is unknown, so both failures take as long
_DUMMY_HASH = password_hasher.hash(secrets.token_urlsafe(16))
_DIRECT = CpuPool(0, enabled=False)


def register(username: str, password: str, email: str, idade: str | int) -> User:
    """Create an account or raise InvalidInput naming each wrong field."""
    username = username or ""
    email = (email or "").strip()
    password = password or ""
    errors: dict[str, str] = {}
    username_error = _username_error(username)
    username = text.normalize_name(username) if text.is_storable(username) else ""
    if username_error:
        errors["username"] = username_error
    if not text.is_storable(email):
        errors["email"] = _("Enter a valid email address, like name@example.com.")
    else:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            errors["email"] = _("Enter a valid email address, like name@example.com.")
    password_error = new_password_error(
        password, username=username, email=email if "email" not in errors else ""
    )
    if password_error:
        errors["password"] = password_error
    age = _parse_idade(idade)
    if age is None:
        errors["idade"] = _(
            "Age must be a whole number from %(low)d to %(high)d.", low=IDADE_MIN, high=IDADE_MAX
        )
    if _username_taken(username):
        # before the script rule: "аlice" (a Cyrillic а) is refused as what it imitates
        errors["username"] = _("That username is taken.")
    if errors:
        raise InvalidInput(errors)

    user = User(
        username=username,
        username_key=text.lookup_key(username),
        username_skeleton=text.skeleton(username),
        password=hash_password(password),
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


def _username_error(username: str) -> str | None:
    """Why `username` (as typed) cannot name a new account, or None."""
    if not text.is_storable(username) or text.has_format_characters(username):
        return _(
            "Usernames cannot contain control characters or invisible formatting "
            "characters (zero-width, text direction)."
        )
    problem = text.username_problem(text.normalize_name(username))
    if problem == "scripts":
        return _(
            "Write the username in one alphabet: mixing scripts (such as Latin and Cyrillic) "
            "makes look-alike names."
        )
    if problem is not None:
        return _("Username must be 3 to 32 characters: letters, digits, underscore, dot or hyphen.")
    if len(text.lookup_key(username)) > KEY_MAX or len(text.skeleton(username)) > SKELETON_MAX:
        return _("That username is too long.")
    return None


def authenticate(username: str, password: str, address: str = "") -> User | None:
    """The user whose password matches, or None; unknown user and wrong password look alike.

    Raises ServiceError("too_many_attempts", status 429) while the throttle holds: after
    LOGIN_FAILURES_PER_NAME failures for one username from one address, or
    LOGIN_FAILURES_PER_ADDRESS from one address, within LOGIN_WINDOW. The password is not
    even checked then, so guessing goes no faster; other addresses can still log in.
    """
    username, password = username or "", password or ""
    if not (text.is_storable(username) and text.is_storable(password)):
        # nothing to look up or hash (UTF-8 cannot encode a lone surrogate): a clear 400
        raise ServiceError(
            "bad_request",
            _("Usernames and passwords cannot contain control characters."),
            400,
        )
    key = text.lookup_key(username.strip())[:KEY_MAX]
    address = (address or "unknown")[:64]
    _check_throttle(key, address)
    user = db.session.scalar(select(User).where(User.username_key == key)) if key else None
    matches = verify_password(user.password if user else _DUMMY_HASH, password)
    if user is None or not matches:
        _record_failure(key, address)
        return None
    db.session.execute(
        delete(LoginFailure).where(
            LoginFailure.username_key == key, LoginFailure.address == address
        )
    )
    db.session.commit()
    if password_hasher.check_needs_rehash(user.password):
        user.password = hash_password(password)
        db.session.commit()
    return user


def new_password_error(password: str, *, username: str = "", email: str = "") -> str | None:
    """Why `password` cannot be a new password (sign-up, password change), or None."""
    password = password or ""
    if not text.is_storable(password):
        return _("Passwords cannot contain control characters.")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return _(
            "Password must be %(low)d to %(high)d characters long.",
            low=PASSWORD_MIN,
            high=PASSWORD_MAX,
        )
    if _guessable(password, username, email):
        return _(
            "This password is too easy to guess: it is common, or close to your username "
            "or email. A few unrelated words make a strong one."
        )
    return None


def _guessable(password: str, username: str, email: str) -> bool:
    """zxcvbn's estimate, on its offline lists of common passwords, words and names.

    Score 2 means at least about 10^6 guesses ("safe from unthrottled online attacks" in
    zxcvbn's words); below that are "password", "12345678", keyboard runs and the username
    with a digit. The test suites' "correct horse" scores 3. zxcvbn's time grows with the
    length: it sees the first ZXCVBN_INPUT_MAX characters only (tens of ms at most).
    """
    inputs = [value for value in (username, email, email.partition("@")[0]) if value]
    result = zxcvbn(password[:ZXCVBN_INPUT_MAX], user_inputs=inputs)
    return result["score"] < PASSWORD_MIN_SCORE


def hash_password(password: str) -> str:
    """The argon2id hash to store for `password` (off the gevent hub when patched)."""
    return _password_pool().run(password_hasher.hash, password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether `password` matches `stored_hash`; False for a malformed hash too."""
    return _password_pool().run(_verify, stored_hash, password)


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return password_hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _password_pool() -> CpuPool:
    if has_app_context():
        return current_app.extensions["password_pool"]
    return _DIRECT


def _check_throttle(key: str, address: str) -> None:
    since = utcnow() - LOGIN_WINDOW
    recent = select(func.count(), func.min(LoginFailure.at)).where(
        LoginFailure.address == address, LoginFailure.at > since
    )
    for query, limit in (
        (recent.where(LoginFailure.username_key == key), LOGIN_FAILURES_PER_NAME),
        (recent, LOGIN_FAILURES_PER_ADDRESS),
    ):
        count, oldest = db.session.execute(query).one()
        if count >= limit:
            wait = oldest + LOGIN_WINDOW - utcnow()
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            raise ServiceError(
                "too_many_attempts",
                ngettext(
                    "Too many failed logins. Try again in %(num)d minute.",
                    "Too many failed logins. Try again in %(num)d minutes.",
                    minutes,
                ),
                429,
            )


def _record_failure(key: str, address: str) -> None:
    # forget what has left the window, so the table stays small
    db.session.execute(delete(LoginFailure).where(LoginFailure.at <= utcnow() - LOGIN_WINDOW))
    db.session.add(LoginFailure(username_key=key, address=address))
    db.session.commit()


# a session's last use is written at most this often (and at least 4 times per idle timeout)
TOUCH_INTERVAL = timedelta(minutes=1)


def token_hash(token: str) -> str:
    """What the database stores for a session token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _lifetimes() -> tuple[timedelta, timedelta]:
    settings = current_app.config["CHAT"]
    return (
        timedelta(seconds=settings.session_idle_timeout),
        timedelta(seconds=settings.session_max_age),
    )


def _live_session_clause(now: datetime):
    """The SQL condition of a login session that has not expired at `now`."""
    idle, max_age = _lifetimes()
    return and_(LoginSession.last_seen_at > now - idle, LoginSession.created_at > now - max_age)


def session_deadline(row: LoginSession) -> datetime:
    """When `row` ends by its absolute lifetime (its idle deadline moves with use)."""
    return row.created_at + _lifetimes()[1]


def start_session(user: User, user_agent: str = "") -> str:
    """Record a new login session for `user` and return its token (for the cookie).

    Expired sessions of every user are pruned here too.
    """
    prune_expired_sessions(commit=False)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = LoginSession(
        token_hash=token_hash(token),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        user_agent=(user_agent or "")[:255],
    )
    db.session.add(row)
    db.session.commit()
    user.session_token = token
    user.login_session = row
    return token


def load_session_user(token: str) -> User | None:
    """The user behind a session token, or None once that session has ended or expired.

    A live session's `last_seen_at` is moved forward at most once per TOUCH_INTERVAL (or a
    quarter of the idle timeout, if shorter), so a busy user costs no write per request.
    """
    if not token:
        return None
    now = utcnow()
    found = db.session.execute(
        select(User, LoginSession)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(LoginSession.token_hash == token_hash(token), _live_session_clause(now))
    ).one_or_none()
    if found is None:
        return None
    user, row = found
    if now - row.last_seen_at >= _touch_interval():
        touch_sessions([row.token_hash], now)
    user.session_token = token
    user.login_session = row
    return user


def _touch_interval() -> timedelta:
    return min(TOUCH_INTERVAL, _lifetimes()[0] / 4)


def touch_sessions(hashes: list[str], now: datetime | None = None) -> None:
    """Mark these sessions as used now (those not touched within the touch interval)."""
    if not hashes:
        return
    now = now or utcnow()
    statement = (
        update(LoginSession)
        .where(
            LoginSession.token_hash.in_(hashes),
            LoginSession.last_seen_at < now - _touch_interval(),
        )
        .values(last_seen_at=now)
    )
    # on SQLite, wait for another process's write lock without stalling the gevent hub
    execute_first_write(db.session, statement)
    db.session.commit()


def live_sessions(hashes: list[str]) -> dict[str, datetime]:
    """Of these session hashes, the ones that still exist and have not expired, with the
    absolute deadline of each. Those are marked as used (an open socket is activity), with
    a write only for the ones not touched within the touch interval."""
    if not hashes:
        return {}
    now = utcnow()
    rows = db.session.execute(
        select(LoginSession.token_hash, LoginSession.created_at, LoginSession.last_seen_at).where(
            LoginSession.token_hash.in_(hashes), _live_session_clause(now)
        )
    ).all()
    db.session.commit()  # end the read transaction before a possible write
    stale = [h for h, _created, seen in rows if now - seen >= _touch_interval()]
    touch_sessions(stale, now)
    max_age = _lifetimes()[1]
    return {h: created + max_age for h, created, _seen in rows}


def prune_expired_sessions(commit: bool = True) -> int:
    """Delete every expired login session (both lifetimes are indexed); returns how many."""
    idle, max_age = _lifetimes()
    now = utcnow()
    result = execute_first_write(
        db.session,
        delete(LoginSession).where(
            or_(LoginSession.last_seen_at <= now - idle, LoginSession.created_at <= now - max_age)
        ),
    )
    if commit:
        db.session.commit()
    return result.rowcount or 0


def user_sessions(user: User) -> list[LoginSession]:
    """The user's live login sessions, the newest first."""
    return list(
        db.session.scalars(
            select(LoginSession)
            .where(LoginSession.user_id == user.id, _live_session_clause(utcnow()))
            .order_by(LoginSession.created_at.desc())
        )
    )


def end_session(token: str | None) -> None:
    """Log out one browser: its session row goes, and every socket of that session."""
    if not token:
        return
    hashed = token_hash(token)
    user_id = db.session.scalar(
        select(LoginSession.user_id).where(LoginSession.token_hash == hashed)
    )
    db.session.execute(delete(LoginSession).where(LoginSession.token_hash == hashed))
    db.session.commit()
    if user_id is not None:
        connections.disconnect_sessions(user_id, {hashed})


def end_other_session(user: User, hashed: str) -> bool:
    """End one of the user's sessions by its hash (the account page's button); False when
    it is not one of theirs (or already gone)."""
    result = db.session.execute(
        delete(LoginSession).where(
            LoginSession.token_hash == hashed, LoginSession.user_id == user.id
        )
    )
    db.session.commit()
    if not result.rowcount:
        return False
    connections.disconnect_sessions(user.id, {hashed})
    return True


def end_all_sessions(user: User, keep_token: str | None = None) -> None:
    """End every session of the user but `keep_token`'s (None: all of them), sockets too."""
    keep = token_hash(keep_token) if keep_token else None
    query = select(LoginSession.token_hash).where(LoginSession.user_id == user.id)
    hashes = set(db.session.scalars(query))
    hashes.discard(keep)
    statement = delete(LoginSession).where(LoginSession.user_id == user.id)
    if keep:
        statement = statement.where(LoginSession.token_hash != keep)
    db.session.execute(statement)
    db.session.commit()
    connections.disconnect_sessions(user.id, hashes, everything=keep is None)


def change_password(user: User, current: str, new: str, confirm: str, address: str = "") -> None:
    """Set a new password after checking the current one; ends every other session.

    Raises InvalidInput naming each wrong field. A wrong current password counts as a
    failed login for this username and address (the login throttle), and while the
    throttle holds the current password is not even checked (ServiceError 429).
    """
    key = user.username_key
    address = (address or "unknown")[:64]
    _check_throttle(key, address)
    errors: dict[str, str] = {}
    if not verify_password(user.password, current or ""):
        _record_failure(key, address)
        errors["current_password"] = _("That is not your current password.")
    problem = new_password_error(new or "", username=user.username, email=user.email)
    if problem:
        errors["new_password"] = problem
    elif (new or "") != (confirm or ""):
        errors["confirm_password"] = _("The two new passwords differ.")
    if errors:
        raise InvalidInput(errors)
    db.session.execute(update(User).where(User.id == user.id).values(password=hash_password(new)))
    db.session.commit()
    end_all_sessions(user, keep_token=user.session_token)


_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/")),
    ("Safari", re.compile(r"Safari/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Macintosh|Mac OS X")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux")),
)


def describe_browser(user_agent: str) -> str:
    """A short description of a User-Agent ("Firefox (Linux)"), or "" when unknown."""
    browser = next((name for name, pattern in _BROWSERS if pattern.search(user_agent or "")), "")
    system = next((name for name, pattern in _SYSTEMS if pattern.search(user_agent or "")), "")
    if browser and system:
        return f"{browser} ({system})"  # proper names: the same in every language
    return browser or system


def _username_taken(username: str) -> bool:
    """Whether `username` or a look-alike of it ("аlice", "ＡＬＩＣＥ" for "alice") is taken."""
    if not username or len(username) > text.USERNAME_MAX or text.has_format_characters(username):
        return False
    found = select(User.id).where(User.username_skeleton == text.skeleton(username))
    return db.session.scalar(found) is not None


def _parse_idade(value: str | int) -> int | None:
    typed = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"[0-9]{1,3}", typed):
        return None
    age = int(typed)
    return age if IDADE_MIN <= age <= IDADE_MAX else None
