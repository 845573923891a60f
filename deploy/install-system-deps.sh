#!/usr/bin/env bash
# Install (as root, from Debian packages) what the full test suite runs for real:
# redis-server and nginx for the cluster, chromium for the browser tests, node/npm for
# the browser assets. Safe to run again: it installs only what is missing.
set -euo pipefail

declare -A package_for=(
  [nginx]=nginx [redis-server]=redis-server [chromium]=chromium
  [node]=nodejs [npm]=npm [make]=make [pg_isready]=postgresql-client
)
missing=()
for cmd in "${!package_for[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${package_for[$cmd]}")
done
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install these Debian packages first (as root): ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# the tests expect PostgreSQL on 127.0.0.1:5432 (database `test`); start it if it is installed
if ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
echo "system dependencies ready"
