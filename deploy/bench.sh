#!/usr/bin/env bash
# The benchmark suite: dts side by side with what a user would otherwise run
# (mariadb-dump, mydumper/myloader, native replication), in one run on this
# machine, with ratios. Installs what is missing (mariadb-server, sysbench,
# mydumper), builds with the production profile (what is deployed: see
# Cargo.toml), and runs target/production/dts-bench.
#
#   deploy/bench.sh            # full sizes (4 x 250,000 rows, 50,000-tx backlog, 60 s per rate)
#   deploy/bench.sh --quick    # a few minutes in all
#   deploy/bench.sh --only full-sync,catch-up --table-size 1000000 --threads 8
#   deploy/bench.sh --only full-sync --shape pinned   # destination on a core of its own
#
# With 2 cores or more the full sync and catch-up run twice: pinned (the
# destination server alone on the last core, everything else on the others,
# as in production where they are different machines) and shared.
#
# Output: a table on stdout, and target/bench/bench.{json,csv,md}.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

. "$repo/deploy/lib/mariadb.sh"
ensure_mariadb
missing=()
command -v sysbench >/dev/null || missing+=(sysbench)
command -v mydumper >/dev/null || missing+=(mydumper)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}..."
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --profile production --workspace --bins -q
# Output goes to target/bench/ (relative to the repo; --out changes it).
exec "$repo/target/production/dts-bench" "$@"
