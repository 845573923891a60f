"""Where the real servers are, and what to do when one is missing (see `need`).

Kept out of conftest.py so the test folders' own conftest files can import it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def need(condition: bool, reason: str) -> None:
    """Skip a test whose real server is missing, except under CI=true, where that fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def postgres_unreachable() -> str | None:
    """Why PostgreSQL at POSTGRES_URL cannot be used, or None when it answers."""
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    return None


@contextlib.contextmanager
def private_postgres_schema(prefix: str) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL, as a URL whose search_path is it; dropped after."""
    engine = create_engine(POSTGRES_URL)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = engine.url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
