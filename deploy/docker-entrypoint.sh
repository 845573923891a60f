#!/bin/sh
# The app container's entrypoint: apply the migrations, then become the server process.
# Replicas starting at once are safe: `flask-chat migrate` takes a lock (PostgreSQL
# advisory lock, or a file lock next to the SQLite file) and skips what is applied.
set -e

if [ "$1" = "gunicorn" ]; then
    flask-chat migrate
fi
# exec: gunicorn is PID 1, so `docker stop`'s SIGTERM reaches it and it drains at once
exec "$@"
