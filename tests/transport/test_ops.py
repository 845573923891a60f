"""/healthz and /readyz: process up; database and Redis reachable (503 with the reason if not)."""

from __future__ import annotations

import contextlib
import dataclasses

from app import create_app
from app.extensions import db
from livechat import free_port


@contextlib.contextmanager
def app_with(settings):
    app = create_app(settings)
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


def test_healthz_names_the_worker(client):
    assert client.get("/healthz").get_json() == {"ok": True, "worker": "test-worker"}


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "ok": True,
        "worker": "test-worker",
        "checks": {"database": "ok"},
    }


def test_readyz_is_503_with_the_reason_when_redis_is_unreachable(app):
    # set after create_app: a message queue would stay on the shared socketio object
    app.config["CHAT"].redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["ok"] is False and body["error"] == "not_ready"
    assert body["checks"]["redis"] == "down"
    assert "redis: ConnectionError" in body["detail"]


def test_readyz_is_503_when_the_database_is_unreachable(settings):
    broken = dataclasses.replace(
        settings, database_url=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    )
    with app_with(broken) as app:
        response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "down"
