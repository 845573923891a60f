"""Database plumbing: engine options per backend and migrations applied at start."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from app.extensions import db

MIGRATIONS_DIR = str(Path(__file__).parent / "migrations")
SQLITE_BUSY_TIMEOUT_MS = 10_000
# any fixed number: it names the PostgreSQL advisory lock that serialises migrations
_MIGRATION_LOCK_ID = 0x666C6368

T = TypeVar("T")


def engine_options(database_url: str) -> dict:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # the pool keeps a few connections; writes still serialise on the file lock
        return {"connect_args": {"timeout": 10, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def create_private_sqlite_file(database_url: str) -> None:
    """Create a new SQLite file readable by its owner only; SQLite gives its -wal and -shm
    files the same mode as the database file."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    if url.database.startswith("file:"):
        return  # a URI filename: the operator chose its options
    path = Path(url.database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def install_sqlite_pragmas(engine: Engine, synchronous: str = "full") -> None:
    """WAL, the busy timeout, foreign keys, and `synchronous` (`SQLITE_SYNCHRONOUS`)."""
    if engine.dialect.name != "sqlite":
        return
    synchronous = {"full": "FULL", "normal": "NORMAL"}[synchronous]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        # FULL (the default): an acked message is on disk, every commit fsyncs the WAL (the
        # post committer, app/rooms/commits.py, commits a batch at a time, off the hub)
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.close()


def execute_first_write(session, statement):
    """Run the first write of a transaction; on SQLite, wait for the write lock politely.

    SQLite's own busy handler waits for another process's write lock by sleeping in C
    (1, 2, 5 ... 100 ms at a time), which stalls a gevent worker's every connection. Here
    the attempt is made without waiting, and on "database is locked" the transaction is
    rolled back and retried after a short Python sleep, which under gevent lets the
    worker's other greenlets run. Bounded by the usual busy timeout.
    """
    # through the session: an ORM update also refreshes the objects it holds
    return first_write(session.connection(), lambda: session.execute(statement))


def first_write(conn, write: Callable[[], T]) -> T:
    """`write()` as the first write of `conn`'s transaction, waiting for SQLite's write
    lock with Python sleeps (see `execute_first_write`); other databases run it directly."""
    if conn.dialect.name != "sqlite":
        return write()
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.0005
    while True:
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            return write()
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                raise
            # drop the read snapshot too: a retry inside it could never get the lock
            conn.connection.dbapi_connection.rollback()
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def warn_if_driver_blocks_gevent(engine: Engine) -> None:
    """psycopg chooses how to wait for the server when first imported: green only if gevent
    had patched `select` by then. A C wait would stall every connection of the worker."""
    if engine.dialect.name != "postgresql":
        return
    from gevent import monkey

    if not monkey.is_module_patched("select"):
        return
    import psycopg.waiting

    if psycopg.waiting.wait is getattr(psycopg.waiting, "wait_c", None):
        logging.getLogger(__name__).warning(
            "psycopg was imported before gevent patched the process: its queries block every "
            "greenlet. Patch first (app/wsgi.py does) or set PSYCOPG_WAIT_FUNC=wait_poll."
        )


def migrate_database(app: Flask) -> None:
    """Apply every Alembic migration; safe when several processes start at once."""
    with app.app_context(), _migration_lock(app):
        upgrade(directory=MIGRATIONS_DIR)


@contextlib.contextmanager
def _migration_lock(app: Flask) -> Iterator[None]:
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                conn.commit()
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        lock_path = Path(engine.url.database + ".migrate-lock")
        with open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        yield
