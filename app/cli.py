"""The `flask-chat` command: serve the embedded default, apply migrations."""

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

    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_embedded(args.host, args.port)
    if args.command == "migrate":
        return migrate_only()
    return 2


def serve_embedded(host: str, port: int) -> int:
    # patch before anything imports socket, ssl or threading for real
    from gevent import monkey

    monkey.patch_all()

    from app import create_app
    from app.config import ConfigError
    from app.db import migrate_database
    from app.extensions import socketio

    try:
        app = create_app()
    except ConfigError as exc:
        print(f"flask-chat: {exc}", file=sys.stderr)
        return 2
    migrate_database(app)
    print(
        f"flask-chat serving on http://{host}:{port}/ (worker {app.config['CHAT'].worker_id})",
        flush=True,
    )
    socketio.run(app, host=host, port=port, log_output=False)
    return 0


def migrate_only() -> int:
    from app import create_app
    from app.config import ConfigError
    from app.db import migrate_database

    try:
        app = create_app()
    except ConfigError as exc:
        print(f"flask-chat: {exc}", file=sys.stderr)
        return 2
    migrate_database(app)
    print("flask-chat: database is up to date", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
