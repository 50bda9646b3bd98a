#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12/13 machine (run as root):
# the Debian packages listed in .ci/apt/*.txt (real DHCP servers/parsers, browser, python3-venv...),
# the project's virtual environment .venv with requirements-dev.lock, and a running MariaDB on
# 127.0.0.1:3306. A failed install stops here with apt's or pip's own error.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
mapfile -t PACKAGES < <(cat .ci/apt/*.txt | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  missing+=(mariadb-server)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-machine: installing ${missing[*]}"
  apt-get update -qq
  # A container has no init system: policy-rc.d (exit 101 = "not allowed") keeps package scripts
  # from starting services, so their failure cannot fail the install; the binaries are what we need.
  policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1; then
  echo "setup-machine: starting MariaDB"
  install -d -o mysql -g mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 30); do mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
  mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null \
    || { echo "setup-machine: MariaDB does not answer on 127.0.0.1:3306 as root" >&2; exit 1; }
fi
# The project's virtual environment (Debian's python3 refuses system-wide pip installs).
if [ ! -x .venv/bin/python ]; then
  echo "setup-machine: creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -r requirements-dev.lock
# Source-of-truth tests: PostgreSQL (trust for postgres on 127.0.0.1) and Redis running, then
# Nautobot in its own virtualenv with a migrated template database (minutes once, then cached).
if ! psql -h 127.0.0.1 -U postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
  for cluster in /etc/postgresql/*/main; do
    [ -d "$cluster" ] || continue
    version=$(basename "$(dirname "$cluster")")
    grep -q '^host all postgres 127.0.0.1/32 trust' "$cluster/pg_hba.conf" \
      || sed -i '1i host all postgres 127.0.0.1/32 trust' "$cluster/pg_hba.conf"
    pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main reload || true
  done
  for _ in $(seq 30); do psql -h 127.0.0.1 -U postgres -tAc 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/bin/redis-server -- --bind 127.0.0.1 --port 6379 || true
  for _ in $(seq 15); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
.venv/bin/python tests/sot/nautobot_server.py
