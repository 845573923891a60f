"""Operations endpoints: /readyz says whether this worker can serve (database and Redis up)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app
from sqlalchemy import text

from app.extensions import db
from app.redis_client import app_redis

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)


@bp.get("/readyz")
def readyz():
    """200 when the database and (if configured) Redis answer; 503 with the reason otherwise."""
    settings = current_app.config["CHAT"]
    checks: dict[str, str] = {}
    problems: list[str] = []
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        db.session.rollback()
        checks["database"] = "down"
        problems.append(f"database: {exc.__class__.__name__}")
    finally:
        db.session.remove()
    if settings.redis_url:
        try:
            _redis_client(settings.redis_url).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = "down"
            problems.append(f"redis: {exc.__class__.__name__}")
    body = {"ok": not problems, "worker": settings.worker_id, "checks": checks}
    if problems:
        log.warning("not ready: %s", "; ".join(problems))
        body["error"] = "not_ready"
        body["detail"] = "; ".join(problems)
        return body, 503
    return body


def _redis_client(url: str):
    # short timeouts: a readiness probe must answer quickly even when Redis hangs
    return app_redis(url)
