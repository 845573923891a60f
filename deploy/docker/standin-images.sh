#!/usr/bin/env bash
# Prepare a local Docker engine and stand-ins for the official images that
# deploy/docker's Dockerfile and compose file use by default.
#
# There is no container registry reachable from this workplace, so
# `FROM python:3.11-slim` / `image: redis:7` cannot be pulled.  This script
#   1. installs docker.io, docker-compose and debootstrap with apt-get if missing,
#   2. starts `dockerd --iptables=false` in the background if no daemon answers,
#   3. debootstraps a Debian bookworm minbase rootfs once (cached as a tarball
#      under /var/cache/flask-chat-docker) and imports it as
#      flask-chat-standin/debian:bookworm,
#   4. builds flask-chat-standin/{python:3.11-slim,nginx:1.27,redis:7,postgres:15,node:20-slim}
#      from deploy/docker/standin/<name>/ with `docker build --network host`
#      (apt-get runs inside, using this host's configured Debian mirror),
#   5. prints PYTHON_IMAGE=... NGINX_IMAGE=... REDIS_IMAGE=... POSTGRES_IMAGE=... NODE_IMAGE=...
#      on stdout (one per line; all progress goes to stderr) and, with
#      --env-file PATH, writes the same lines to PATH.
#
# Re-runs are cheap: an image is rebuilt only when the content hash of its
# standin/<name>/ directory (or the base image) changed; the hash is stored in
# the image label org.flask-chat.standin.hash.
#
# Usage: deploy/docker/standin-images.sh [--env-file PATH] [--force] [--only NAME...]
#   --env-file PATH  also write the variable assignments to PATH
#   --force          rebuild the rootfs tarball, base image and all stand-ins
#                    (docker build --no-cache: picks up new Debian package versions)
#   --only NAME      build only this stand-in (python|nginx|redis|postgres|node); repeatable
# Environment:
#   FLASK_CHAT_DOCKER_CACHE   cache dir      (default /var/cache/flask-chat-docker)
#   FLASK_CHAT_DOCKERD_LOG    dockerd log    (default /var/log/flask-chat-dockerd.log)
#   FLASK_CHAT_DOCKERD_WAIT   seconds to wait for dockerd (default 60)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STANDIN_DIR=$HERE/standin
CACHE_DIR=${FLASK_CHAT_DOCKER_CACHE:-/var/cache/flask-chat-docker}
DOCKERD_LOG=${FLASK_CHAT_DOCKERD_LOG:-/var/log/flask-chat-dockerd.log}
DOCKERD_WAIT=${FLASK_CHAT_DOCKERD_WAIT:-60}
PREFIX=flask-chat-standin
SUITE=bookworm
BASE_IMAGE=$PREFIX/debian:$SUITE
HASH_LABEL=org.flask-chat.standin.hash
# Bump ROOTFS_RECIPE whenever make_rootfs() changes what it produces.
ROOTFS_RECIPE="v1 $SUITE minbase include=ca-certificates"

# name -> image tag, and name -> variable printed for compose/build
declare -A TAG=(
  [python]=$PREFIX/python:3.11-slim
  [nginx]=$PREFIX/nginx:1.27
  [redis]=$PREFIX/redis:7
  [postgres]=$PREFIX/postgres:15
  [node]=$PREFIX/node:20-slim
)
declare -A VAR=([python]=PYTHON_IMAGE [nginx]=NGINX_IMAGE [redis]=REDIS_IMAGE [postgres]=POSTGRES_IMAGE
                [node]=NODE_IMAGE)
ORDER=(python nginx redis postgres node)

ENV_FILE=""
FORCE=0
ONLY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --env-file) ENV_FILE=${2:?--env-file needs a path}; shift 2 ;;
    --env-file=*) ENV_FILE=${1#*=}; shift ;;
    --force) FORCE=1; shift ;;
    --only) ONLY+=("${2:?--only needs a name}"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#ONLY[@]} -gt 0 ]; then
  for n in "${ONLY[@]}"; do [ -n "${TAG[$n]:-}" ] || { echo "unknown stand-in: $n" >&2; exit 2; }; done
  ORDER=("${ONLY[@]}")
fi

T0=$SECONDS
log() { printf '[standin-images +%3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, starts dockerd, runs debootstrap)"

# The Docker CLI on these machines may be newer (28.x) than Debian's engine
# (20.10) and has no buildx plugin: use the classic builder, which both support.
export DOCKER_BUILDKIT=0
export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_MODE=l   # host apt installs must not restart host services

mkdir -p "$CACHE_DIR/logs"
# One run at a time per machine (CI jobs and developers may overlap).
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
  log "another standin-images.sh holds $CACHE_DIR/.lock; waiting (max 30 min)"
  flock -w 1800 9 || die "timed out waiting for the lock"
fi

# ---------------------------------------------------------------- apt -----
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

wait_for_apt() {
  local waited=0
  while pgrep -x apt-get >/dev/null || pgrep -x apt >/dev/null || pgrep -x dpkg >/dev/null; do
    [ $waited -eq 0 ] && log "waiting for a running apt-get/dpkg to finish"
    [ $waited -ge 1200 ] && die "apt-get/dpkg still running after ${waited}s"
    sleep 3; waited=$((waited + 3))
  done
}

ensure_packages() {
  local missing=() p
  for p in docker.io docker-compose debootstrap; do pkg_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  wait_for_apt
  # apt-get update only when the lists do not know the packages yet.
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q >&2
  fi
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
    log "install failed; refreshing package lists and retrying once"
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
}

# ------------------------------------------------------------- dockerd -----
docker_answers() { timeout 15 docker info >/dev/null 2>&1; }

ensure_dockerd() {
  if docker_answers; then
    log "docker daemon answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi
  if pgrep -x dockerd >/dev/null; then
    log "dockerd is running but not answering yet; waiting"
  else
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    log "starting dockerd --iptables=false (log: $DOCKERD_LOG)"
    # setsid+nohup: keep the daemon alive after this script (and its CI step)
    # exits; 9>&- so the long-lived daemon does not inherit our lock.
    setsid nohup dockerd --iptables=false >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
  fi
  local i
  for ((i = 0; i < DOCKERD_WAIT; i++)); do
    docker_answers && { log "docker daemon up after ${i}s"; return 0; }
    sleep 1
  done
  tail -n 40 "$DOCKERD_LOG" >&2 || true
  die "docker daemon did not answer within ${DOCKERD_WAIT}s"
}

# ----------------------------------------------------- apt mirror lookup -----
# Print the first URI configured on this host for Debian suite $1 (e.g.
# "bookworm", "bookworm-security"), from deb822 *.sources or one-line *.list files.
apt_uri_for_suite() {
  local suite=$1 f
  shopt -s nullglob
  for f in /etc/apt/sources.list.d/*.sources; do
    awk -v want="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no") {
          n = split(suites, s, " ")
          for (i = 1; i <= n; i++) if (s[i] == want) { split(uris, u, " "); print u[1]; found = 1; exit }
        }
        types = uris = suites = ""; enabled = "yes"
      }
      BEGIN { enabled = "yes" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { line = $0; key = tolower(line); sub(/:.*/, "", key); val = line; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val; else if (key == "uris") uris = val
        else if (key == "suites") suites = val; else if (key == "enabled") enabled = tolower(val) }
      END { if (!found) flush() }
    ' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [opts] URI suite components...
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v want="$suite" '$1 == "deb" && $3 == want { print $2 }'
  done
  shopt -u nullglob
}

# ---------------------------------------------------- rootfs + base image -----
ROOTFS_KEY=$(printf '%s' "$ROOTFS_RECIPE" | sha256sum | cut -c1-12)
ROOTFS_TAR=$CACHE_DIR/debian-$SUITE-minbase-$ROOTFS_KEY.tar

make_rootfs() {
  local mirror security updates_uri dir=$CACHE_DIR/rootfs.tmp
  mirror=$(apt_uri_for_suite "$SUITE" | head -n1)
  [ -n "$mirror" ] || die "no apt source for suite $SUITE found in /etc/apt; cannot debootstrap"
  security=$(apt_uri_for_suite "$SUITE-security" | head -n1)
  updates_uri=$(apt_uri_for_suite "$SUITE-updates" | head -n1)

  cleanup_rootfs_dir() {
    local m
    for m in "$dir/proc" "$dir/sys" "$dir/dev/pts" "$dir/dev"; do
      if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" || true; fi
    done
    if grep -q " $dir/" /proc/mounts; then
      log "WARNING: something is still mounted under $dir; not deleting it"
    else
      rm -rf "$dir"
    fi
  }
  cleanup_rootfs_dir
  log "debootstrap $SUITE minbase from the host's configured mirror (about a minute)"
  if ! debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$dir" "$mirror" \
      >"$CACHE_DIR/logs/debootstrap.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/logs/debootstrap.log" >&2
    cleanup_rootfs_dir
    die "debootstrap failed (log: $CACHE_DIR/logs/debootstrap.log)"
  fi

  # Make it behave like Debian's official container images.
  {
    echo "Types: deb"; echo "URIs: $mirror"
    echo "Suites: $SUITE${updates_uri:+ $SUITE-updates}"
    echo "Components: main"; echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    if [ -n "$security" ]; then
      echo; echo "Types: deb"; echo "URIs: $security"; echo "Suites: $SUITE-security"
      echo "Components: main"; echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    fi
  } >"$dir/etc/apt/sources.list.d/debian.sources"
  rm -f "$dir/etc/apt/sources.list"
  # no service starts from maintainer scripts during docker build
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod 755 "$dir/usr/sbin/policy-rc.d"
  # keep images small (as debian:*-slim does)
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$dir/etc/apt/apt.conf.d/docker-no-recommends"
  cat >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log \
         "$dir"/usr/share/doc/*/[!c]* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
         "$dir"/usr/share/locale/*
  : >"$dir/etc/resolv.conf"; : >"$dir/etc/hostname"   # docker bind-mounts its own

  tar --numeric-owner -C "$dir" -cf "$ROOTFS_TAR.tmp" .
  mv -f "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  cleanup_rootfs_dir
  # drop tarballs of older recipes
  find "$CACHE_DIR" -maxdepth 1 -name "debian-$SUITE-minbase-*.tar" ! -name "$(basename "$ROOTFS_TAR")" -delete
  log "rootfs cached: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
}

image_label() {  # image label -> value ("" if image or label missing)
  docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null | sed 's/^<no value>$//' || true
}

ensure_base_image() {
  if [ "$FORCE" = 1 ] || [ ! -s "$ROOTFS_TAR" ]; then
    make_rootfs
  else
    log "rootfs tarball cached: $ROOTFS_TAR"
  fi
  if [ "$FORCE" = 0 ] && [ "$(image_label "$BASE_IMAGE" "$HASH_LABEL")" = "$ROOTFS_KEY" ]; then
    log "base image $BASE_IMAGE up to date"
    return 0
  fi
  local old; old=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)
  log "importing $BASE_IMAGE"
  docker import \
    --change "LABEL $HASH_LABEL=$ROOTFS_KEY" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]' \
    "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
  if [ -n "$old" ]; then docker image rm "$old" >/dev/null 2>&1 || true; fi
}

# ------------------------------------------------------------ stand-ins -----
standin_hash() {  # content hash of standin/<name>/ + the base image it builds on
  local name=$1 base_id
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  {
    echo "$base_id"
    (cd "$STANDIN_DIR/$name" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

build_standin() {
  local name=$1 tag=${TAG[$1]} want have old logf=$CACHE_DIR/logs/build-$1.log t=$SECONDS
  [ -f "$STANDIN_DIR/$name/Dockerfile" ] || die "missing $STANDIN_DIR/$name/Dockerfile"
  want=$(standin_hash "$name")
  have=$(image_label "$tag" "$HASH_LABEL")
  if [ "$FORCE" = 0 ] && [ "$have" = "$want" ]; then
    log "$tag up to date ($want)"
    return 0
  fi
  old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  log "building $tag (log: $logf)"
  local nocache=(); [ "$FORCE" = 1 ] && nocache=(--no-cache)
  if ! docker build --network host --pull=false "${nocache[@]}" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --label "$HASH_LABEL=$want" \
        -t "$tag" "$STANDIN_DIR/$name" >"$logf" 2>&1; then
    tail -n 40 "$logf" >&2
    die "docker build of $tag failed (log: $logf)"
  fi
  # remove the image this one replaced, unless a container still uses it
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
  log "built $tag in $((SECONDS - t))s"
}

# ------------------------------------------------------------------ main -----
ensure_packages
ensure_dockerd
ensure_base_image
for name in "${ORDER[@]}"; do build_standin "$name"; done

lines=()
for name in python nginx redis postgres node; do
  docker image inspect "${TAG[$name]}" >/dev/null 2>&1 && lines+=("${VAR[$name]}=${TAG[$name]}")
done
if [ -n "$ENV_FILE" ]; then
  mkdir -p "$(dirname "$ENV_FILE")"
  printf '%s\n' "${lines[@]}" >"$ENV_FILE"
  log "wrote $ENV_FILE"
fi
log "done in $((SECONDS - T0))s"
printf '%s\n' "${lines[@]}"
