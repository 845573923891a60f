"""Fixtures for the cluster tests: real gunicorn workers, nginx, Redis and PostgreSQL."""

from __future__ import annotations

import pytest

from cluster_helpers import Cluster, need_cluster_servers
from servers import need, postgres_unreachable, private_postgres_schema


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
    reason = postgres_unreachable()
    need(reason is None, reason or "")
    with private_postgres_schema("c") as url:
        yield url
