#!/usr/bin/env bash
# The main job for a newcomer: a local multi-node dts cluster, up and healthy.
#
#   deploy/quickstart.sh        build, start 3 coordinators + 2 workers, show status
#   deploy/quickstart.sh down   stop and remove everything it started
#
# The end-to-end MySQL sync demo (sample database, schema + full + incremental
# task, comparison of source and destination) arrives with the sync pipeline;
# until then this brings up the control plane and schedules a demo task.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DTS_LOCAL_DIR=${DTS_LOCAL_DIR:-$repo/.dts-quickstart}
profile=${DTS_PROFILE:-release}

case "${1:-up}" in
  down) exec "$repo/deploy/local-cluster.sh" clean ;;
  up) ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac

"$repo/deploy/local-cluster.sh" up
dtsctl="$repo/target/$profile/dtsctl --coordinators 127.0.0.1:$(( ${DTS_BASE_PORT:-7700} + 1 )),127.0.0.1:$(( ${DTS_BASE_PORT:-7700} + 2 ))"

cat >"$DTS_LOCAL_DIR/demo-task.toml" <<'TOML'
name = "quickstart-demo"
du = 2
modes = ["schema", "full", "incremental"]

[source]
host = "127.0.0.1"
port = 3306
user = "root"

[destination]
host = "127.0.0.1"
port = 3307
user = "root"

[[objects]]
database = "shop"
TOML

if ! $dtsctl task list | grep -q quickstart-demo; then
  echo
  echo "creating and starting a demo task ($DTS_LOCAL_DIR/demo-task.toml):"
  $dtsctl task create -f "$DTS_LOCAL_DIR/demo-task.toml" --start >/dev/null
fi
for _ in $(seq 1 50); do
  $dtsctl task list | grep quickstart-demo | grep -q running && break
  sleep 0.2
done
echo
$dtsctl task list
echo
echo "The task is placed on a worker by DU capacity and runs under a fencing epoch."
echo "Try: kill -9 the worker that runs it (pids in $DTS_LOCAL_DIR/run) and watch it move:"
echo "     $dtsctl task list"
echo "Stop everything with: deploy/quickstart.sh down"
