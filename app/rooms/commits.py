"""Group commit of posts: many posts stored in one transaction, each caller told its own result.

Why. Storing each post through the ORM in its own transaction cost ~700 µs of CPU per post
(~29 % of a worker at 4,000 deliveries/s). Here one committer greenlet per worker process
takes everything queued (at most `MAX_BATCH` posts) and stores it with a few Core
statements built once (SQLAlchemy caches their compiled form): one `SELECT` for the
client_ids already stored, per room one `UPDATE chats SET last_seq = last_seq + k ...
RETURNING last_seq`, one executemany `INSERT ... RETURNING id`, one `COMMIT`. There is no
artificial delay: while one batch commits, the next accumulates.

Guarantees (tests/unit/test_commits.py, tests/cluster/test_group_commit.py):

- **Order.** `seq` is gap-free per room and in commit order, across workers too: the
  `UPDATE` takes the room's row lock (PostgreSQL) or the database write lock (SQLite)
  until the batch commits; a batch's posts to one room get their seqs in queue order
  (rooms are locked in id order, so two workers' batches cannot deadlock).
- **Durability.** A caller is answered after `COMMIT`: an ack is sent for stored posts only,
  and they are on disk — SQLite runs with `synchronous=FULL` (app/db.py: the WAL is fsynced
  at every commit; that COMMIT runs in an OS thread, `durable_commit`), PostgreSQL with its
  default `synchronous_commit=on`. A worker killed after the ack, or the machine losing
  power, loses no acked message. `SQLITE_SYNCHRONOUS=normal` trades the power-loss part
  for CPU (bench/RESULTS.md): acked messages still survive a crash of the process.
- **Exactly once per client_id.** A post whose (user, room, client_id) is stored already is
  answered `created=False` with the stored message; the same client_id twice in one batch
  is stored once and both callers get that message (the second with `created=False`).
- **Isolation of failures.** A post to a missing room is answered `RoomMissing` (the caller
  says `no_such_room`) and its neighbours are stored. A unique-constraint conflict (another
  worker stored the same client_id after our look-up) rolls the batch back and stores it
  again one post at a time, so only the loser gets the stored row back. Any other database
  error fails that batch's callers with the error. Every waiter is answered, even when
  the committer itself is killed; a caller waits at most `WAIT_TIMEOUT` seconds.
- **Politeness under gevent.** The batch's first write waits for SQLite's write lock with
  Python sleeps (`app.db.first_write`), so the worker's other greenlets keep running.

When it applies: with gevent (`Settings.async_mode == "gevent"`). Otherwise (threading
mode: the test client, the CLI) `Committer.submit` stores the post inline, as a batch of one,
through the same code. Nothing here needs a request or an app context.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from app.db import first_write
from app.models import Chat, Message, message_wire, utcnow
from app.offload import CpuPool

log = logging.getLogger(__name__)

MAX_BATCH = 256  # posts per transaction
WAIT_TIMEOUT = 60.0  # seconds a caller waits for its batch at most (a hung database)


@dataclass(frozen=True)
class StoredMessage:
    """A stored message: the columns of `Message` and its `to_wire()`, without the ORM."""

    id: int
    chat_id: int
    seq: int
    user_id: int | None
    username: str
    message: str
    client_id: str | None
    created_at: datetime

    def to_wire(self) -> dict:
        return message_wire(self)


@dataclass(frozen=True)
class Posted:
    message: StoredMessage | Message
    created: bool  # False when this was a retry of an already stored message


@dataclass(frozen=True)
class NewPost:
    """A validated post waiting to be stored: plain values, nothing lazy-loaded."""

    user_id: int
    username: str
    room_id: int
    text: str
    client_id: str | None = None

    @property
    def key(self) -> tuple[int, int, str] | None:
        """What a retry is recognised by; None when the post has no client_id."""
        return None if self.client_id is None else (self.user_id, self.room_id, self.client_id)


class RoomMissing(Exception):
    """The post's room does not exist (deleted, or never was); nothing was stored for it."""

    def __init__(self, room_id: int):
        super().__init__(f"no room {room_id}")
        self.room_id = room_id


class NotStored(RuntimeError):
    """The post's batch failed (a database error) or its answer did not come in time."""


Outcome = Posted | Exception

# -- the statements, built once ------------------------------------------------------------

_chats = Chat.__table__
_messages = Message.__table__
_COLUMNS = [_messages.c[f.name] for f in StoredMessage.__dataclass_fields__.values()]

_BUMP_ROOM = (
    update(_chats)
    .where(_chats.c.id == bindparam("room_id"))
    .values(last_seq=_chats.c.last_seq + bindparam("count"), last_activity_at=bindparam("now"))
    .returning(_chats.c.last_seq)
)
_INSERT = insert(_messages).returning(_messages.c.id, sort_by_parameter_order=True)
# the posts' (user, room, client_id) keys joined to messages: one probe of the index of
# uq_messages_user_chat_client_id per key, with the same three parameters for any batch
# (IN lists per column probed every combination; a row-value IN scanned SQLite's index)
_SELECT_STORED = (
    "SELECT m.id, m.chat_id, m.seq, m.user_id, m.username, m.message, m.client_id, m.created_at"
)
_FIND_STORED = {
    "sqlite": text(
        _SELECT_STORED + " FROM json_each(:keys) AS k JOIN messages AS m"
        " ON m.user_id = json_extract(k.value, '$[0]')"
        " AND m.chat_id = json_extract(k.value, '$[1]')"
        " AND m.client_id = json_extract(k.value, '$[2]')"
    ).columns(*_COLUMNS),
    "postgresql": text(
        _SELECT_STORED + " FROM unnest(CAST(:user_ids AS INTEGER[]),"
        " CAST(:room_ids AS INTEGER[]), CAST(:client_ids AS VARCHAR[])) AS k (u, r, c)"
        " JOIN messages AS m ON m.user_id = k.u AND m.chat_id = k.r AND m.client_id = k.c"
    ).columns(*_COLUMNS),
}


# -- one batch -----------------------------------------------------------------------------


def store_batch(
    conn: Connection, posts: Sequence[NewPost], commit: Callable[[Connection], None] | None = None
) -> list[Outcome]:
    """Store `posts` in one transaction on `conn`; one outcome per post, in order.

    An outcome is a `Posted`, a `RoomMissing`, or the exception that failed the batch.
    `commit` commits the batch (the committer's waits for SQLite's fsync off the hub).
    """
    try:
        outcomes = _store_together(conn, posts)
        (commit or Connection.commit)(conn)
        return outcomes
    except IntegrityError:
        conn.rollback()
        if len(posts) == 1:
            return [_after_conflict(conn, posts[0])]
        # another worker stored one of these client_ids since the look-up: find the loser
        return [_store_alone(conn, post, commit) for post in posts]
    except Exception as exc:  # noqa: BLE001 - every caller is answered with it
        conn.rollback()
        log.exception("storing a batch of %d posts failed", len(posts))
        return [exc] * len(posts)


def _store_alone(conn: Connection, post: NewPost, commit=None) -> Outcome:
    try:
        outcome = _store_together(conn, [post])[0]
        (commit or Connection.commit)(conn)
        return outcome
    except IntegrityError:
        conn.rollback()
        return _after_conflict(conn, post)
    except Exception as exc:  # noqa: BLE001 - this caller is answered with it
        conn.rollback()
        return exc


def _after_conflict(conn: Connection, post: NewPost) -> Outcome:
    """The answer to a post that lost a unique-constraint race: the winner's message."""
    try:
        stored = _find_stored(conn, [post]).get(post.key) if post.key else None
        conn.rollback()
    except Exception as exc:  # noqa: BLE001 - this caller is answered with it
        conn.rollback()
        return exc
    if stored is None:
        return NotStored("a unique constraint refused the post")
    return Posted(stored, created=False)


def _store_together(conn: Connection, posts: Sequence[NewPost]) -> list[Outcome]:
    """The work of one transaction, not committed: look up retries, number, insert."""
    stored = _find_stored(conn, posts)
    outcomes: list[Outcome | None] = [None] * len(posts)
    first_of: dict[tuple, int] = {}  # client_id key -> the index of its first post here
    repeats: list[tuple[int, int]] = []  # (index, index of the first post with its key)
    new_by_room: dict[int, list[int]] = {}
    for index, post in enumerate(posts):
        key = post.key
        if key in stored:
            outcomes[index] = Posted(stored[key], created=False)
        elif key is not None and key in first_of:
            repeats.append((index, first_of[key]))
        else:
            if key is not None:
                first_of[key] = index
            new_by_room.setdefault(post.room_id, []).append(index)

    now = utcnow()
    rows: list[dict] = []
    numbered: list[int] = []
    # rooms in id order: two workers' batches lock shared rooms in the same order
    for position, room_id in enumerate(sorted(new_by_room)):
        indexes = new_by_room[room_id]
        params = {"room_id": room_id, "count": len(indexes), "now": now}

        def bump(params=params):
            return conn.execute(_BUMP_ROOM, params).scalar_one_or_none()

        # the transaction's first write takes the lock; later ones hold it already
        last_seq = first_write(conn, bump) if position == 0 else bump()
        if last_seq is None:
            for index in indexes:
                outcomes[index] = RoomMissing(room_id)
            continue
        for offset, index in enumerate(indexes):
            post = posts[index]
            rows.append(
                {
                    "chat_id": room_id,
                    "seq": last_seq - len(indexes) + 1 + offset,
                    "user_id": post.user_id,
                    "username": post.username,
                    "message": post.text,
                    "client_id": post.client_id,
                    "created_at": now,
                }
            )
            numbered.append(index)

    if rows:
        ids = conn.execute(_INSERT, rows).scalars().all()
        for index, row, message_id in zip(numbered, rows, ids, strict=True):
            outcomes[index] = Posted(StoredMessage(id=message_id, **row), created=True)
    for index, first in repeats:
        outcome = outcomes[first]
        outcomes[index] = Posted(outcome.message, False) if isinstance(outcome, Posted) else outcome
    return outcomes


def _find_stored(conn: Connection, posts: Sequence[NewPost]) -> dict[tuple, StoredMessage]:
    """The messages already stored under the posts' client_ids, by (user, room, client_id)."""
    keys = sorted({post.key for post in posts if post.key is not None})
    if not keys:
        return {}
    if conn.dialect.name == "sqlite":
        params = {"keys": json.dumps(keys)}
    else:
        user_ids, room_ids, client_ids = (list(column) for column in zip(*keys, strict=True))
        params = {"user_ids": user_ids, "room_ids": room_ids, "client_ids": client_ids}
    found = {}
    for row in conn.execute(_FIND_STORED[conn.dialect.name], params):
        message = StoredMessage(**row._mapping)
        found[message.user_id, message.chat_id, message.client_id] = message
    return found


# -- the committer -------------------------------------------------------------------------


class Committer:
    """Where a post waits to be stored: one queue and one committer greenlet per process.

    `submit` hands a post over and waits for its own outcome. Disabled (threading mode),
    it stores the post inline as a batch of one. The greenlet starts on first use in the
    process that uses it (so it never crosses a fork) and serves the engine it started with.
    """

    def __init__(self, *, enabled: bool, max_batch: int = MAX_BATCH, fsync_off_hub: bool = True):
        self.enabled = enabled
        self.max_batch = max_batch
        self._queue = None
        self._greenlet = None
        self._conn: Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        # one OS thread for SQLite's COMMIT when it fsyncs (SQLITE_SYNCHRONOUS=full): see
        # `durable_commit`; with `normal` a commit does not wait for the disk
        self._disk = CpuPool(1, enabled=enabled and fsync_off_hub)

    def submit(self, engine: Engine, post: NewPost) -> Outcome:
        """Store `post`; its outcome once its batch has committed (or failed)."""
        if not self.enabled:
            with engine.connect() as conn:
                return store_batch(conn, [post])[0]
        from gevent.event import AsyncResult
        from gevent.timeout import Timeout

        waiter = AsyncResult()
        self._inbox(engine).put((post, waiter))
        try:
            return waiter.get(timeout=WAIT_TIMEOUT)
        except Timeout:
            return NotStored(f"no answer from the post committer within {WAIT_TIMEOUT} s")

    def _inbox(self, engine: Engine):
        """The queue of this process's committer, started (again) when it is not running."""
        if self._pid != os.getpid() or self._greenlet is None or self._greenlet.dead:
            with self._lock:
                import gevent
                from gevent.queue import SimpleQueue

                if self._pid != os.getpid() or self._queue is None:
                    self._queue = SimpleQueue()
                    self._conn = None  # a connection from before a fork is not ours
                    self._pid = os.getpid()
                    self._greenlet = None
                if self._greenlet is None or self._greenlet.dead:
                    # what waits in the queue of a committer that died is served by this one
                    self._greenlet = gevent.spawn(self._run, engine, self._queue)
        return self._queue

    def stop(self) -> None:
        """Kill the committer greenlet (tests); the posts of its current batch are answered
        `NotStored`, and the next `submit` starts a new one."""
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = self._queue = None
        self._drop_connection()

    def _run(self, engine: Engine, queue) -> None:
        """The committer greenlet: forever, everything queued, a batch at a time."""
        from gevent.queue import Empty

        while True:
            batch = [queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(queue.get_nowait())
                except Empty:
                    break
            self._commit(engine, batch)

    def _commit(self, engine: Engine, batch: list) -> None:
        outcomes: list[Outcome] | None = None
        try:
            outcomes = store_batch(
                self._connection(engine), [post for post, _ in batch], self.durable_commit
            )
        except Exception as exc:  # noqa: BLE001 - e.g. no connection: answer every caller
            log.exception("the post committer could not store a batch")
            outcomes = [exc] * len(batch)
        finally:
            if outcomes is None:  # killed mid-batch (GreenletExit): still answer everyone
                outcomes = [NotStored("the post committer stopped")] * len(batch)
            for (_, waiter), outcome in zip(batch, outcomes, strict=True):
                waiter.set(outcome)
        if any(isinstance(o, Exception) and not isinstance(o, RoomMissing) for o in outcomes):
            self._drop_connection()  # it may be broken: the next batch takes a fresh one

    def durable_commit(self, conn: Connection) -> None:
        """Commit the batch. On SQLite (synchronous=FULL: the WAL is fsynced at each commit)
        the COMMIT itself runs in an OS thread, so the worker's other greenlets keep running
        while the disk works; the sqlite3 module lets go of the GIL meanwhile. The committer
        greenlet alone uses this connection, and it waits."""
        if conn.dialect.name == "sqlite" and self._disk.enabled:
            self._disk.run(conn.connection.dbapi_connection.commit)
        conn.commit()  # SQLAlchemy's side of it (the DBAPI commit is a no-op by now)

    def _connection(self, engine: Engine) -> Connection:
        """The committer's own connection, held between batches: callers waiting for their
        posts may hold every other connection of the pool, the committer must not need one."""
        if self._conn is None:
            self._conn = engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                log.warning("the post committer could not close its connection", exc_info=True)
