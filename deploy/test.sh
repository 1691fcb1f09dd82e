#!/usr/bin/env bash
# Runs the whole test suite, installing what a fresh machine lacks: the
# MariaDB server (the end-to-end tests start throwaway instances),
# percona-toolkit and sysbench (pt-online-schema-change runs under sysbench
# in the online DDL tests). Uses
# cargo-nextest (end-to-end tests in a serial group, .config/nextest.toml)
# when present, plain cargo test with one thread otherwise.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

. "$repo/deploy/lib/mariadb.sh"
ensure_mariadb
missing=()
command -v pt-online-schema-change >/dev/null || missing+=(percona-toolkit)
command -v sysbench >/dev/null || missing+=(sysbench)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}..."
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --workspace --bins --tests

if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --profile ci "$@"
else
  echo "cargo-nextest not found; using cargo test with one test thread"
  exec cargo test --workspace "$@" -- --test-threads=1
fi
