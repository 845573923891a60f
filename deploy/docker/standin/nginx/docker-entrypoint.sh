#!/bin/sh
# Small version of the official nginx image's entrypoint:
# for `nginx ...` commands, run /docker-entrypoint.d/*.sh and render
# $NGINX_ENVSUBST_TEMPLATE_DIR/*$NGINX_ENVSUBST_TEMPLATE_SUFFIX into
# $NGINX_ENVSUBST_OUTPUT_DIR with envsubst, then exec the command.
set -e

if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    for f in /docker-entrypoint.d/*.sh; do
        [ -f "$f" ] || continue
        echo "$0: running $f"
        # shellcheck disable=SC1090
        if [ -x "$f" ]; then "$f"; else . "$f"; fi
    done

    template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
    suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
    output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
    filter="${NGINX_ENVSUBST_FILTER:-}"
    if [ -d "$template_dir" ]; then
        # only variables present in the environment: leaves $host, $uri, ... alone
        # shellcheck disable=SC2016,SC2046  # literal ${NAME}s; one word per variable name
        defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null))
        find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
            relative_path="${template#"$template_dir/"}"
            output_path="$output_dir/${relative_path%"$suffix"}"
            mkdir -p "$(dirname "$output_path")"
            echo "$0: rendering $template to $output_path"
            envsubst "$defined_envs" <"$template" >"$output_path"
        done
    fi
    echo "$0: configuration complete; ready for start up"
fi

exec "$@"
