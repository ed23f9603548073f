#!/usr/bin/env bash
# Prepares Postgres + pgvector for memgate's Postgres store and its tests, idempotently:
#   - starts the local PostgreSQL 15 cluster when it is stopped;
#   - builds pgvector from Debian trixie's source package (bookworm does not package it for
#     PG 15), using the mirror the machine's own apt sources name;
#   - creates the extension in the test database.
# Env: MEMGATE_PG_URL (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail

PG_VERSION=15
PG_CONFIG="/usr/lib/postgresql/$PG_VERSION/bin/pg_config"
PG_URL="${MEMGATE_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

cluster_running() { pg_lsclusters --no-header 2>/dev/null | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; }
if ! cluster_running; then
  echo "starting PostgreSQL $PG_VERSION"
  $sudo_cmd pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start
fi
for _ in $(seq 1 50); do
  psql "$PG_URL" -qAtc 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.2
done
psql "$PG_URL" -qAtc 'SELECT 1' >/dev/null

if [ ! -f "$("$PG_CONFIG" --pkglibdir 2>/dev/null)/vector.so" ]; then
  echo "building pgvector from Debian's source package"
  # The mirror of the machine's existing bookworm source, so no host is hard-coded here.
  mirror=$(grep -rhoE '^URIs: *[^ ]+/debian/?$' /etc/apt/sources.list.d/ 2>/dev/null | head -1 | awk '{print $2}')
  if [ -z "$mirror" ]; then
    mirror=$(grep -rhoE '^deb +[^ ]+/debian/? ' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -1 | awk '{print $2}')
  fi
  [ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
  list=/etc/apt/sources.list.d/memgate-trixie-src.list
  if [ ! -f "$list" ]; then
    echo "deb-src $mirror trixie main" | $sudo_cmd tee "$list" >/dev/null
  fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "postgresql-server-dev-$PG_VERSION" dpkg-dev make gcc >/dev/null
  build=$(mktemp -d)
  (
    cd "$build"
    apt-get source -qq pgvector >/dev/null 2>&1 || apt-get source pgvector
    cd pgvector-*/
    make -s PG_CONFIG="$PG_CONFIG" >/dev/null
    $sudo_cmd make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
  )
  rm -rf "$build"
fi

PGOPTIONS='-c client_min_messages=warning' psql "$PG_URL" -qAtc 'CREATE EXTENSION IF NOT EXISTS vector' >/dev/null
echo "postgres ready: pgvector $(psql "$PG_URL" -qAtc "SELECT extversion FROM pg_extension WHERE extname = 'vector'")"
