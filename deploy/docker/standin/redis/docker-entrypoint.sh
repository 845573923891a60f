#!/bin/sh
# Small version of the official redis image's entrypoint.
set -e

# `docker run IMAGE --appendonly yes` or `docker run IMAGE /etc/redis.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = "redis-server" ]; then
    # The official image is compiled with protected mode off ("unnecessary in
    # the context of Docker"); Debian's binary is not, so turn it off here
    # unless the command line sets it.
    case " $* " in
        *" --protected-mode "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
    if [ "$(id -u)" = "0" ]; then
        find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi

exec "$@"
