#!/bin/bash
# Small version of the official postgres image's entrypoint.
set -Eeuo pipefail

# `docker run IMAGE -c max_connections=200`
if [ "${1:0:1}" = "-" ]; then
    set -- postgres "$@"
fi

if [ "$1" = "postgres" ]; then
    if [ "$(id -u)" = "0" ]; then
        mkdir -p "$PGDATA" /var/run/postgresql
        chown postgres:postgres "$PGDATA" /var/run/postgresql
        chmod 700 "$PGDATA"; chmod 3777 /var/run/postgresql
        exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
    fi

    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        POSTGRES_USER=${POSTGRES_USER:-postgres}
        POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
        auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
        if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != "trust" ]; then
            echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
            echo "       (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password)" >&2
            exit 1
        fi

        pwfile=$(mktemp)
        printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
        # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list, as upstream
        initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
               -D "$PGDATA" ${POSTGRES_INITDB_ARGS:-}
        rm -f "$pwfile"
        printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
        printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

        # temporary server on the unix socket only, for setup
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
        psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
        if [ "$POSTGRES_DB" != "postgres" ]; then
            "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
        fi
        for f in /docker-entrypoint-initdb.d/*; do
            [ -e "$f" ] || continue
            # shellcheck disable=SC1090  # initdb.d scripts are sourced, as upstream
            case "$f" in
                *.sh)     echo "$0: running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
                *.sql)    echo "$0: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
                *.sql.gz) echo "$0: running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
                *)        echo "$0: ignoring $f" ;;
            esac
        done
        pg_ctl -D "$PGDATA" -m fast -w stop
        echo "$0: PostgreSQL init process complete; ready for start up."
    fi
fi

exec "$@"
