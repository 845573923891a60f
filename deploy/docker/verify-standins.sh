#!/usr/bin/env bash
# Smoke-test the stand-in images built by standin-images.sh (about 15 s):
#   python   - python/pip on PATH, `python -m venv`, useradd
#   nginx    - a template rendered by envsubst ($host kept), served to another
#              container by name on a user-defined network, and on a published
#              127.0.0.1 port (docker-proxy)
#   redis    - PING from another container by service name
#   postgres - POSTGRES_USER/PASSWORD/DB create role+db; password login from
#              another container; wrong password refused
# Uses the images named in the environment (PYTHON_IMAGE etc., as printed by
# standin-images.sh), defaulting to the flask-chat-standin/* tags.
# Usage: deploy/docker/verify-standins.sh [--port HOSTPORT]   (default 18080)
set -euo pipefail

PYTHON_IMAGE=${PYTHON_IMAGE:-flask-chat-standin/python:3.11-slim}
NGINX_IMAGE=${NGINX_IMAGE:-flask-chat-standin/nginx:1.27}
REDIS_IMAGE=${REDIS_IMAGE:-flask-chat-standin/redis:7}
POSTGRES_IMAGE=${POSTGRES_IMAGE:-flask-chat-standin/postgres:15}
PORT=18080
[ "${1:-}" = "--port" ] && PORT=${2:?--port needs a number}

ID=standin-verify-$$
NET=$ID-net
TMP=$(mktemp -d)
cleanup() {
  docker rm -f "$ID-web" "$ID-redis" "$ID-db" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

pass=0 fail=0
check() {  # check NAME EXPECTED-SUBSTRING COMMAND...
  local name=$1 want=$2 out; shift 2
  out=$("$@" 2>&1) || true
  if [[ "$out" == *"$want"* ]]; then
    echo "ok   $name"; pass=$((pass + 1))
  else
    echo "FAIL $name: expected '$want', got:"; printf '%s\n' "$out" | tail -n 5 | sed 's/^/     /'
    fail=$((fail + 1))
  fi
}
run_on_net() { docker run --rm --network "$NET" "$@"; }

docker network create "$NET" >/dev/null

# --- python
check "python: venv + pip + useradd" "venv-ok" \
  docker run --rm "$PYTHON_IMAGE" sh -ec \
    'python --version; python3 --version; pip --version >/dev/null; useradd -m u;
     python -m venv /tmp/v; /tmp/v/bin/pip --version >/dev/null; /tmp/v/bin/python -c "print(\"venv-ok\")"'

# --- nginx (template + user-defined network + published loopback port)
mkdir -p "$TMP/templates"
# shellcheck disable=SC2016  # nginx variables, rendered inside the container
printf '%s\n' 'server {' \
  '    listen ${NGINX_PORT} default_server;' \
  '    location / { default_type text/plain; return 200 "standin ${GREETING} host=$host\n"; }' \
  '}' >"$TMP/templates/verify.conf.template"
docker run -d --name "$ID-web" --network "$NET" --network-alias web \
  -p "127.0.0.1:$PORT:80" -e NGINX_PORT=80 -e GREETING=hello \
  -v "$TMP/templates:/etc/nginx/templates:ro" "$NGINX_IMAGE" >/dev/null
for _ in $(seq 20); do curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.5; done
check "nginx: template rendered, served on published 127.0.0.1:$PORT" "standin hello host=127.0.0.1" \
  curl -fsS "http://127.0.0.1:$PORT/"
check "nginx: served to another container by name" "standin hello host=web" \
  run_on_net "$PYTHON_IMAGE" python -c 'import urllib.request as u; print(u.urlopen("http://web/", timeout=5).read().decode())'

# --- redis
docker run -d --name "$ID-redis" --network "$NET" --network-alias redis "$REDIS_IMAGE" >/dev/null
for _ in $(seq 20); do docker exec "$ID-redis" redis-cli ping >/dev/null 2>&1 && break; sleep 0.5; done
check "redis: PING from another container by name" "PONG" run_on_net "$REDIS_IMAGE" redis-cli -h redis ping

# --- postgres
docker run -d --name "$ID-db" --network "$NET" --network-alias db \
  -e POSTGRES_USER=chat -e POSTGRES_PASSWORD=s3cret -e POSTGRES_DB=chatdb "$POSTGRES_IMAGE" >/dev/null
# wait for the real server (TCP), not the socket-only init server
for _ in $(seq 60); do docker exec "$ID-db" pg_isready -q -h 127.0.0.1 -U chat -d chatdb && break; sleep 0.5; done
check "postgres: password login from another container" "chat|chatdb" \
  run_on_net -e PGPASSWORD=s3cret "$POSTGRES_IMAGE" psql -h db -U chat -d chatdb -Atc 'select current_user, current_database()'
check "postgres: wrong password refused" "password authentication failed" \
  run_on_net -e PGPASSWORD=wrong "$POSTGRES_IMAGE" psql -h db -U chat -d chatdb -Atc 'select 1'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
