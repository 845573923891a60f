"""Database plumbing: engine options per backend and migrations applied at start."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url

from app.extensions import db

MIGRATIONS_DIR = str(Path(__file__).parent / "migrations")
# any fixed number: it names the PostgreSQL advisory lock that serialises migrations
_MIGRATION_LOCK_ID = 0x666C6368


def engine_options(database_url: str) -> dict:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # the pool keeps a few connections; writes still serialise on the file lock
        return {"connect_args": {"timeout": 10, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def install_sqlite_pragmas(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


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
