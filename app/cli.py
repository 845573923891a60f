"""The `flask-chat` command: serve the embedded default, apply migrations, run a local cluster."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flask-chat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the chat in one gevent process (SQLite, in-process broadcasts)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)

    sub.add_parser("migrate", help="apply database migrations and exit")

    cluster = sub.add_parser(
        "cluster",
        help="run N gunicorn workers behind nginx with Redis on this machine (foreground)",
    )
    cluster.add_argument("--workers", type=int, default=3)
    cluster.add_argument("--port", type=int, default=8080, help="nginx's port (0: a free one)")
    cluster.add_argument("--host", default="127.0.0.1", help="nginx's address")
    cluster.add_argument(
        "--redis-url", default="", help="use this Redis (default: start a private redis-server)"
    )
    cluster.add_argument("--state-file", help="write the cluster's ports and pids here as JSON")
    cluster.add_argument(
        "--ws-compression",
        action="store_true",
        help="let WebSocket clients negotiate permessage-deflate (off by default: CPU)",
    )

    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_embedded(args.host, args.port)
    if args.command == "migrate":
        return migrate_only()
    if args.command == "cluster":
        if not 1 <= args.workers <= 64:
            parser.error("--workers must be between 1 and 64")
        from app.cluster import run_cluster

        return run_cluster(
            args.workers,
            args.port,
            host=args.host,
            redis_url=args.redis_url,
            state_file=args.state_file,
            ws_compression=args.ws_compression,
        )
    return 2


def serve_embedded(host: str, port: int) -> int:
    # patch before anything imports socket, ssl or threading for real
    from gevent import monkey

    monkey.patch_all()

    from app.extensions import socketio

    app = _migrated_app()
    if app is None:
        return 2
    print(
        f"flask-chat serving on http://{host}:{port}/ (worker {app.config['CHAT'].worker_id})",
        flush=True,
    )
    socketio.run(app, host=host, port=port, log_output=False)
    return 0


def migrate_only() -> int:
    if _migrated_app() is None:
        return 2
    print("flask-chat: database is up to date", flush=True)
    return 0


def _migrated_app():
    """The app with its database migrated, or None after saying why the config is unusable."""
    from app import create_app
    from app.config import ConfigError
    from app.db import migrate_database

    try:
        app = create_app()
    except ConfigError as exc:
        print(f"flask-chat: {exc}", file=sys.stderr)
        return None
    migrate_database(app)
    return app


if __name__ == "__main__":
    sys.exit(main())
