"""Migration 0003 upgrades a database with data: name keys recomputed (collisions kept),
client_id unique per room. On SQLite and PostgreSQL."""

import contextlib

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.config import Settings
from app.db import MIGRATIONS_DIR
from app.extensions import db
from servers import need, postgres_unreachable, private_postgres_schema

NOW = "2026-11-24 10:00:00"


@pytest.fixture
def old_app(backend, tmp_path):
    """An app whose database stands at revision 0002."""
    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            reason = postgres_unreachable()
            need(reason is None, reason or "")
            url = stack.enter_context(private_postgres_schema("m"))
        else:
            url = f"sqlite:///{tmp_path / 'old.db'}"
        app = create_app(
            Settings(
                secret_key="test",
                instance_path=tmp_path / "instance",
                database_url=url,
                async_mode="threading",
                testing=True,
            )
        )
        with app.app_context():
            upgrade(directory=MIGRATIONS_DIR, revision="0002")
            yield app
            db.session.remove()
            db.engine.dispose()


def run(sql: str, **params):
    result = db.session.execute(text(sql), params)
    db.session.commit()
    return result


def insert_old_rows():
    for user_id, name in ((1, "Alice"), (2, "bob")):
        run(
            "INSERT INTO users (id, username, username_key, password, email, idade, created_at)"
            " VALUES (:id, :name, :key, 'x', 'e@example.com', 30, :now)",
            id=user_id,
            name=name,
            key=name.lower(),
            now=NOW,
        )
    # rooms the old rules accepted: the second is a fullwidth look-alike of the first
    for chat_id, name in ((1, "general"), (2, "ｇｅｎｅｒａｌ"), (3, "Café")):
        run(
            "INSERT INTO chats (id, name, name_key, created_by, created_at, last_seq,"
            " last_activity_at) VALUES (:id, :name, :key, 1, :now, 1, :now)",
            id=chat_id,
            name=name,
            key=name.lower(),
            now=NOW,
        )
    run(
        "INSERT INTO messages (id, chat_id, seq, user_id, username, message, client_id,"
        " created_at) VALUES (1, 1, 1, 1, 'Alice', 'hello', 'c-1', :now)",
        now=NOW,
    )


def test_upgrade_recomputes_keys_and_keeps_every_row(old_app):
    insert_old_rows()
    upgrade(directory=MIGRATIONS_DIR, revision="0003")

    users = run("SELECT username, username_key, username_skeleton FROM users ORDER BY id").all()
    assert [tuple(u) for u in users] == [("Alice", "alice", "a1ice"), ("bob", "bob", "bob")]
    chats = run("SELECT name, name_key FROM chats ORDER BY id").all()
    # the older room keeps the key; the look-alike stays, with its id appended
    assert [tuple(c) for c in chats] == [
        ("general", "genera1"),
        ("ｇｅｎｅｒａｌ", "genera1#2"),
        ("Café", "cafe\u0301"),
    ]
    assert run("SELECT message, client_id FROM messages").all() == [("hello", "c-1")]


def test_after_upgrade_a_client_id_is_unique_per_room_and_skeletons_are_unique(old_app):
    insert_old_rows()
    upgrade(directory=MIGRATIONS_DIR, revision="0003")
    # the same client_id in another room is a new message now
    run(
        "INSERT INTO messages (id, chat_id, seq, user_id, username, message, client_id,"
        " created_at) VALUES (2, 3, 1, 1, 'Alice', 'elsewhere', 'c-1', :now)",
        now=NOW,
    )
    with pytest.raises(IntegrityError):
        run(
            "INSERT INTO messages (id, chat_id, seq, user_id, username, message, client_id,"
            " created_at) VALUES (3, 1, 2, 1, 'Alice', 'again', 'c-1', :now)",
            now=NOW,
        )
    db.session.rollback()
    with pytest.raises(IntegrityError):
        run(
            "INSERT INTO users (id, username, username_key, username_skeleton, password,"
            " email, idade, created_at) VALUES (3, 'a1ice', 'a1ice', 'a1ice', 'x',"
            " 'e@example.com', 30, :now)",
            now=NOW,
        )
    db.session.rollback()


def test_downgrade_goes_back_to_lower_cased_keys(old_app):
    insert_old_rows()
    upgrade(directory=MIGRATIONS_DIR, revision="0003")
    downgrade(directory=MIGRATIONS_DIR, revision="0002")
    users = run("SELECT username_key FROM users ORDER BY id").scalars().all()
    assert users == ["alice", "bob"]
    assert run("SELECT count(*) FROM messages").scalar() == 1
