"""The application factory: builds everything, nothing happens at import time."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

# realtime registers its Socket.IO handlers on import: that must happen before
# socketio.init_app(), which hands the registered handlers to each new server
from app import accounts, codec, i18n, ops, realtime, rooms  # noqa: F401
from app.accounts.service import load_session_user
from app.config import Settings
from app.db import (
    create_private_sqlite_file,
    engine_options,
    install_sqlite_pragmas,
    warn_if_driver_blocks_gevent,
)
from app.errors import ServiceError
from app.extensions import csrf, db, login_manager, migrate, socketio
from app.limits import Limiter, rules_from
from app.logs import configure_logging
from app.offload import CpuPool
from app.realtime import connections, dispatch, transport
from app.realtime.fanout import PreframingManager
from app.realtime.queue import RedisQueue
from app.rooms.commits import Committer
from app.security import install_security_headers, origin_checker

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = (settings or Settings.from_env()).resolve()
    configure_logging(settings)

    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.json = codec.JSONProvider(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        CHAT=settings,
        TESTING=settings.testing,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=64 * 1024,
    )

    create_private_sqlite_file(settings.database_url)
    # argon2 off the hub when gevent-patched (app/offload.py)
    app.extensions["password_pool"] = CpuPool(
        settings.password_hash_threads, enabled=settings.async_mode == "gevent"
    )
    # posts stored a batch per transaction by one greenlet under gevent (app/rooms/commits.py)
    app.extensions["post_committer"] = Committer(
        enabled=settings.async_mode == "gevent",
        fsync_off_hub=settings.sqlite_synchronous == "full",
    )
    app.extensions["limiter"] = Limiter(
        rules_from(settings.limits), enabled=settings.rate_limits, redis_url=settings.redis_url
    )
    if not settings.rate_limits:
        log.warning("RATE_LIMITS=off: every rate limit of this worker is off (load tests only)")

    db.init_app(app)
    with app.app_context():
        install_sqlite_pragmas(db.engine, settings.sqlite_synchronous)
        warn_if_driver_blocks_gevent(db.engine)
    migrate.init_app(app, db)
    csrf.init_app(app)
    i18n.init_app(app)
    login_manager.init_app(app)
    # init_app merges its options into the previous app's: start clean, or the message queue
    # (client_manager) of an earlier app in this process would stay
    socketio.server_options.clear()
    # with Redis our manager, not the one Flask-SocketIO would make from message_queue=: one
    # ordered publisher connection, a listener nothing else disconnects; without it
    # python-socketio's in-process one. Both pre-frame broadcasts (app/realtime/fanout.py)
    manager = RedisQueue(settings.redis_url) if settings.redis_url else PreframingManager()
    manager.preframe = settings.fast_fanout
    socketio.init_app(
        app,
        async_mode=settings.async_mode,
        client_manager=manager,
        # the same origin as the app trusts it (ProxyFix, wrapped around this middleware
        # below, has applied X-Forwarded-* by then), plus ALLOWED_ORIGINS
        cors_allowed_origins=origin_checker(settings.allowed_origins),
        logger=False,
        engineio_logger=transport.engineio_logger(),
        # UTF-8 in packets and in the Redis queue's payloads (its manager uses the same codec)
        json=codec,
        # a connection's events run in its own reader, in order, without a greenlet each
        async_handlers=False,
    )
    dispatch.install(app, socketio.server)
    connections.registry.init_app(app)
    transport.install(socketio.server, fast_fanout=settings.fast_fanout)

    app.register_blueprint(accounts.bp)
    app.register_blueprint(rooms.bp)
    app.register_blueprint(i18n.bp)
    app.register_blueprint(ops.bp)
    login_manager.user_loader(load_session_user)
    login_manager.unauthorized_handler(_unauthorized)
    _register_error_handlers(app)
    install_security_headers(app)

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "worker": settings.worker_id}

    if settings.forwarded_hops:
        # outermost, in front of the Socket.IO middleware, so the Origin check sees the
        # same host and scheme as the pages; trust only as many X-Forwarded-* entries as
        # there are proxies we put there
        hops = settings.forwarded_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    return app


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _unauthorized():
    from flask import redirect, url_for

    if _wants_json():
        return jsonify(error="unauthorized", detail=_("Log in to use the API.")), 401
    return redirect(url_for("accounts.index"))


def _register_error_handlers(app: Flask) -> None:
    def reply(status: int, code: str, detail: str):
        if _wants_json():
            return jsonify(error=code, detail=detail), status
        return render_template("error.html", status=status, detail=detail), status

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        db.session.rollback()
        return reply(exc.status, exc.code, exc.detail)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return reply(
            400, "csrf", _("This form expired or came from another site. Reload and retry.")
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return reply(exc.code or 500, code, _http_error_detail(exc))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return reply(500, "internal", _("Something went wrong on our side; try again."))


def _http_error_detail(exc: HTTPException) -> str:
    """werkzeug's descriptions are English only: say the common ones in the user's language."""
    details = {
        404: _("There is nothing at this address. Check the link, or start again."),
        405: _("This page cannot be used that way."),
        413: _("That was too much data at once."),
    }
    return details.get(exc.code or 0) or _("The request could not be handled.")
