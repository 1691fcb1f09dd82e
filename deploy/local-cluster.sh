#!/usr/bin/env bash
# A local dts cluster on loopback: 3 coordinators (a Raft group) and 2 workers.
#
#   deploy/local-cluster.sh up       build if needed, start, wait for a leader
#   deploy/local-cluster.sh status   processes and `dtsctl cluster status`
#   deploy/local-cluster.sh down     stop exactly what `up` started
#   deploy/local-cluster.sh clean    down, then remove data and logs
#
# Everything lives under $DTS_LOCAL_DIR (default: .dts-local in the repo):
# data dirs, logs, pid files. Ports: $DTS_BASE_PORT+1..+3 (default 7701-7703).
# DTS_PROFILE=debug uses a debug build (default: release).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${DTS_LOCAL_DIR:-$repo/.dts-local}
base_port=${DTS_BASE_PORT:-7700}
profile=${DTS_PROFILE:-release}
coordinators=3
worker_dus=(4 4)

bin_dir="$repo/target/$profile"
coordinator_addrs() {
  local out=() i
  for i in $(seq 1 $coordinators); do out+=("127.0.0.1:$((base_port + i))"); done
  (IFS=,; echo "${out[*]}")
}
members() {
  local out=() i
  for i in $(seq 1 $coordinators); do out+=("$i=127.0.0.1:$((base_port + i))"); done
  (IFS=,; echo "${out[*]}")
}

build() {
  local flag=()
  [ "$profile" = release ] && flag=(--release)
  echo "building dts ($profile; a no-op when up to date)..."
  (cd "$repo" && cargo build "${flag[@]}" --bins -q)
}

# A pid file's process, if it is still the one we started.
live_pid() {
  local pidfile=$1 name=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$name" || return 1
  echo "$pid"
}

start() { # name pidfile log program args...
  local name=$1 pidfile=$2 log=$3; shift 3
  if live_pid "$pidfile" "$name" >/dev/null; then
    echo "  $name already running (pid $(cat "$pidfile"))"
    return
  fi
  nohup "$@" >>"$log" 2>&1 &
  echo $! >"$pidfile"
  echo "  $name started (pid $!, log $log)"
}

dtsctl() { "$bin_dir/dtsctl" --coordinators "$(coordinator_addrs)" "$@"; }

up() {
  build
  mkdir -p "$dir/logs" "$dir/run"
  echo "coordinators:"
  for i in $(seq 1 $coordinators); do
    start "coordinator-$i" "$dir/run/coordinator-$i.pid" "$dir/logs/coordinator-$i.log" \
      "$bin_dir/dts-coordinator" --id "$i" --listen "127.0.0.1:$((base_port + i))" \
      --data-dir "$dir/data/coordinator-$i" --initial-members "$(members)"
  done
  printf "waiting for a leader"
  for _ in $(seq 1 100); do
    if dtsctl cluster status -o json 2>/dev/null | grep -q '"role": "leader"'; then echo " ok"; break; fi
    printf "."; sleep 0.2
  done
  echo "workers:"
  local n=0 du
  for du in "${worker_dus[@]}"; do
    n=$((n + 1))
    start "worker-$n" "$dir/run/worker-$n.pid" "$dir/logs/worker-$n.log" \
      "$bin_dir/dts-worker" --id "local-worker-$n" --du "$du" --coordinators "$(coordinator_addrs)" \
      --data-dir "$dir/data/worker-$n"
  done
  for _ in $(seq 1 50); do
    [ "$(dtsctl worker list -o json 2>/dev/null | grep -c '"state": "online"')" -ge "${#worker_dus[@]}" ] && break
    sleep 0.2
  done
  echo
  echo "cluster directory: $dir (data/, logs/, run/)"
  echo "use it:  export DTS_COORDINATORS=$(coordinator_addrs)"
  echo "         $bin_dir/dtsctl cluster status"
  echo
  dtsctl cluster status
}

status() {
  local f name pid
  for f in "$dir"/run/*.pid; do
    [ -e "$f" ] || { echo "nothing started under $dir"; return 0; }
    name=$(basename "$f" .pid)
    if pid=$(live_pid "$f" dts-); then
      echo "  $name: running (pid $pid)"
    else
      echo "  $name: not running"
    fi
  done
  echo
  dtsctl cluster status || true
}

down() {
  local f pid
  for f in "$dir"/run/*.pid; do
    [ -e "$f" ] || continue
    if pid=$(live_pid "$f" dts-); then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "  stopped $(basename "$f" .pid) (pid $pid)"
    fi
    rm -f "$f"
  done
}

case "${1:-}" in
  up) up ;;
  status) status ;;
  down) down ;;
  clean) down; rm -rf "$dir"; echo "removed $dir" ;;
  *) echo "usage: $0 up|status|down|clean" >&2; exit 2 ;;
esac
