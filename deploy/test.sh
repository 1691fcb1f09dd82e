#!/usr/bin/env bash
# Runs the whole test suite, installing what a fresh machine lacks: the
# MariaDB server (the end-to-end tests start throwaway instances). Uses
# cargo-nextest (end-to-end tests in a serial group, .config/nextest.toml)
# when present, plain cargo test with one thread otherwise.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

. "$repo/deploy/lib/mariadb.sh"
ensure_mariadb

cargo build --workspace --bins --tests

if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --profile ci "$@"
else
  echo "cargo-nextest not found; using cargo test with one test thread"
  exec cargo test --workspace "$@" -- --test-threads=1
fi
