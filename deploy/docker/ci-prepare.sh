#!/usr/bin/env bash
# Get this machine ready to build and run the compose stack without a container registry:
#   1. deploy/docker/standin-images.sh: Docker engine up, stand-in base images built,
#   2. deploy/docker/wheels: every Python dependency as a wheel (pip wheel on the host),
#   3. deploy/docker/npm-cache: the npm cache for the lock file (npm ci on the host),
# then write the image variables to the env file given (default .cache/docker-images.env)
# and print them. The Dockerfile uses the wheels and the npm cache when they are there.
# Steps 2 and 3 are skipped when pyproject.toml / package-lock.json did not change since
# the last run (a stamp file records their hash), so the image's layer cache stays valid.
#
# Usage (as root): deploy/docker/ci-prepare.sh [ENV_FILE]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/deploy/docker
ENV_FILE=${1:-$ROOT/.cache/docker-images.env}
WHEELS=$HERE/wheels
NPM_CACHE=$HERE/npm-cache
PYTHON=${PYTHON:-python3}
T0=$SECONDS
log() { printf '[ci-prepare +%3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }

mkdir -p "$(dirname "$ENV_FILE")"
bash "$HERE/standin-images.sh" --env-file "$ENV_FILE" >/dev/null

# the image's Python is 3.11: wheels must be built by a 3.11 on this host
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || { log "ERROR: $PYTHON is not Python 3.11 (set PYTHON=...)"; exit 1; }

stamp_ok() {  # stamp_ok FILE HASH: the inputs are unchanged since the last fill
  [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}

want=$(cat "$ROOT/pyproject.toml" <("$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
if stamp_ok "$WHEELS/.stamp" "$want"; then
  log "wheels up to date ($(find "$WHEELS" -name '*.whl' | wc -l) files)"
else
  log "building the wheelhouse with $("$PYTHON" --version)"
  find "$WHEELS" -name '*.whl' -delete
  # setuptools (and wheel, for older setuptools) are the project's build backend;
  # async-timeout: redis needs it on Python < 3.11.3, and the stand-in has Debian's 3.11.2
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check -w "$WHEELS" "$ROOT" \
      setuptools wheel async-timeout >&2 2> >(grep -v "^WARNING: Location 'file:" >&2)
  rm -f "$WHEELS"/flask_chat-*.whl   # the image builds the project from its own copy
  echo "$want" >"$WHEELS/.stamp"
  log "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels"
fi

want=$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)
if stamp_ok "$NPM_CACHE/.stamp" "$want"; then
  log "npm cache up to date"
else
  log "filling the npm cache from the lock file"
  find "$NPM_CACHE" -mindepth 1 ! -name README.md -exec rm -rf {} +
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp "$ROOT/package.json" "$ROOT/package-lock.json" "$work/"
  (cd "$work" && npm ci --cache "$NPM_CACHE" --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
  echo "$want" >"$NPM_CACHE/.stamp"
fi

log "done in $((SECONDS - T0))s; images in $ENV_FILE"
cat "$ENV_FILE"
