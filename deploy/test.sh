#!/usr/bin/env bash
# Runs the whole test suite, installing what a fresh machine lacks:
# MariaDB server (the end-to-end tests start throwaway instances) and
# cargo-nextest (runs the end-to-end tests in a serial group).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
  echo "installing mariadb-server..."
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi
# Debian starts a system server on install; the tests use their own instances.
if command -v systemctl >/dev/null && systemctl is-active --quiet mariadb 2>/dev/null; then
  as_root systemctl stop mariadb || true
fi

cargo build --workspace --bins --tests

if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --profile ci "$@"
else
  echo "cargo-nextest not found; using cargo test with one test thread"
  exec cargo test --workspace "$@" -- --test-threads=1
fi
