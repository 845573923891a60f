#!/bin/sh
# The app container's entrypoint: apply the migrations, then become the server process.
# Replicas starting at once are safe: `flask-chat migrate` takes a lock (PostgreSQL
# advisory lock, or a file lock next to the SQLite file) and skips what is applied.
set -e

if [ "$1" = "gunicorn" ]; then
    # the database may still be starting (the postgres profile): retry, bounded
    wait_seconds=${DB_WAIT_SECONDS:-60}
    started=$(date +%s)
    while :; do
        status=0
        flask-chat migrate || status=$?
        [ "$status" -eq 0 ] && break
        if [ "$status" -eq 2 ]; then
            # a refused configuration (e.g. a short SECRET_KEY): waiting will not fix it
            echo "flask-chat: the configuration is refused (see above); not starting" >&2
            exit 2
        fi
        if [ $(($(date +%s) - started)) -ge "$wait_seconds" ]; then
            echo "flask-chat: migrations still failing after ${wait_seconds}s; giving up" >&2
            exit 1
        fi
        echo "flask-chat: database not ready; retrying migrations in 2 s" >&2
        sleep 2
    done
fi
# exec: gunicorn is PID 1, so `docker stop`'s SIGTERM reaches it and it drains at once
exec "$@"
