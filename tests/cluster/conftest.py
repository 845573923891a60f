"""Fixtures for the cluster tests: real gunicorn workers, nginx, Redis and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from cluster_helpers import Cluster, need_cluster_servers
from servers import POSTGRES_URL, need


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """3 workers + nginx + the cluster's private Redis, on SQLite; shared by a module."""
    need_cluster_servers()
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def postgres_database_url():
    """A private PostgreSQL schema for a cluster (its migrations run there), dropped after."""
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        engine.dispose()
        need(False, f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.__class__.__name__}")
    schema = f"c_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = engine.url.update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
