#!/usr/bin/env bash
# A local dts cluster on loopback: a Raft group of coordinators and a pool of
# workers, each process started from its own config file.
#
#   deploy/local-cluster.sh up [--coordinators N] [--workers N] [--du N] [--insecure]
#                                  build if needed, write configs, start, wait for health
#   deploy/local-cluster.sh status   every process, the leader, workers and tasks; exit 1 if unhealthy
#   deploy/local-cluster.sh down     stop exactly what `up` started
#   deploy/local-cluster.sh clean    down, then remove data, configs and logs
#
# Defaults: 3 coordinators, 2 workers of 4 DU. Everything lives under
# $DTS_LOCAL_DIR (default: .dts-local in the repo):
#   conf/<node>.toml   the config each process runs with (edit and `up` again)
#   pki/               the cluster CA, a certificate per process, admin and viewer
#                      certificates for dtsctl, and the secrets key ring
#   dtsctl.env         `. .dts-local/dtsctl.env` points dtsctl at the cluster as admin
#   data/<node>/       Raft store / worker state
#   logs/<node>/       daily-rotated log files, 7 kept
#   run/<node>.pid     pid files
# Ports: $DTS_BASE_PORT+1.. (default 7701..) for gRPC; Prometheus metrics at
# http://127.0.0.1:<port>/metrics on $DTS_BASE_PORT+101.. for coordinators and
# +151.. for workers (7801.., 7851..). DTS_PROFILE=debug uses a debug build.
# Mutual TLS is on: --insecure runs plaintext without authentication (remembered).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${DTS_LOCAL_DIR:-$repo/.dts-local}
base_port=${DTS_BASE_PORT:-7700}
profile=${DTS_PROFILE:-release}
bin_dir="$repo/target/$profile"
layout="$dir/cluster.env"

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# The layout `up` chose (ports included) is remembered, so status/down need no flags.
coordinators=3
workers=2
du=4
insecure=false
[ -f "$layout" ] && . "$layout"
pki="$dir/pki"

parse_flags() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --coordinators) coordinators=${2:?}; shift 2 ;;
      --workers) workers=${2:?}; shift 2 ;;
      --du) du=${2:?}; shift 2 ;;
      --insecure) insecure=true; shift ;;
      -h|--help) usage ;;
      *) echo "unknown flag: $1" >&2; usage ;;
    esac
  done
  for v in "$coordinators" "$workers" "$du"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "counts must be positive integers (got '$v')" >&2; exit 2; }
  done
  [ "$coordinators" -le 9 ] || { echo "--coordinators: at most 9" >&2; exit 2; }
}

coordinator_addrs() {
  local out=() i
  for i in $(seq 1 "$coordinators"); do out+=("127.0.0.1:$((base_port + i))"); done
  (IFS=,; echo "${out[*]}")
}

toml_list() { # items... -> ["a", "b"]
  local out=() item
  for item in "$@"; do out+=("\"$item\""); done
  (IFS=,; echo "[${out[*]}]" | sed 's/,/, /g')
}

build() {
  local flag=()
  [ "$profile" = release ] && flag=(--release)
  echo "building dts ($profile; a no-op when up to date)..."
  (cd "$repo" && cargo build "${flag[@]}" --bins -q)
}

# The CA, one certificate per process and the key ring, made once; later
# `up`s with more nodes only issue what is missing.
write_pki() {
  local i
  mkdir -p "$pki"
  chmod 700 "$pki"
  [ -f "$pki/ca.pem" ] || "$bin_dir/dtsctl" cert ca --dir "$pki" >/dev/null
  issue() { [ -f "$pki/$1.pem" ] || "$bin_dir/dtsctl" cert issue --dir "$pki" --name "$1" --role "$2" >/dev/null; }
  for i in $(seq 1 "$coordinators"); do issue "coordinator-$i" peer; done
  for i in $(seq 1 "$workers"); do issue "worker-$i" worker; done
  issue admin admin
  issue viewer viewer
  [ -f "$pki/secrets.key" ] || "$bin_dir/dtsctl" cert secrets-key --file "$pki/secrets.key" >/dev/null
}

# A node's transport section: its certificate, or plaintext.
tls_config() { # node
  if [ "$insecure" = true ]; then
    echo "insecure = true"
  else
    printf '[tls]\nca = "%s"\ncert = "%s"\nkey = "%s"\n' "$pki/ca.pem" "$pki/$1.pem" "$pki/$1.key"
  fi
}

write_env() {
  {
    echo "# Written by deploy/local-cluster.sh: \`. $dir/dtsctl.env\` and dtsctl reaches this cluster."
    echo "export DTS_COORDINATORS=$(coordinator_addrs)"
    if [ "$insecure" = true ]; then
      echo "export DTS_INSECURE=true"
      echo "unset DTS_TLS_CA DTS_TLS_CERT DTS_TLS_KEY"
    else
      echo "export DTS_TLS_CA=$pki/ca.pem"
      echo "# the viewer's certificate: $pki/viewer.pem and viewer.key"
      echo "export DTS_TLS_CERT=$pki/admin.pem"
      echo "export DTS_TLS_KEY=$pki/admin.key"
      echo "unset DTS_INSECURE"
    fi
    echo "export PATH=$bin_dir:\$PATH"
  } >"$dir/dtsctl.env"
}

write_configs() {
  local i members=() addrs=()
  mkdir -p "$dir/conf"
  for i in $(seq 1 "$coordinators"); do
    members+=("$i=127.0.0.1:$((base_port + i))")
    addrs+=("127.0.0.1:$((base_port + i))")
  done
  for i in $(seq 1 "$coordinators"); do
    cat >"$dir/conf/coordinator-$i.toml" <<EOF
# Written by deploy/local-cluster.sh; see deploy/config/coordinator.toml for every key.
id = $i
listen = "127.0.0.1:$((base_port + i))"
metrics_listen = "127.0.0.1:$((base_port + 100 + i))"
data_dir = "$dir/data/coordinator-$i"
initial_members = $(toml_list "${members[@]}")
$([ "$insecure" = true ] || echo "secrets_key = \"$pki/secrets.key\"")

[log]
dir = "$dir/logs/coordinator-$i"
rotation = "daily"
keep_files = 7

$(tls_config "coordinator-$i")
EOF
  done
  for i in $(seq 1 "$workers"); do
    cat >"$dir/conf/worker-$i.toml" <<EOF
# Written by deploy/local-cluster.sh; see deploy/config/worker.toml for every key.
id = "local-worker-$i"
address = "127.0.0.1"
du = $du
coordinators = $(toml_list "${addrs[@]}")
metrics_listen = "127.0.0.1:$((base_port + 150 + i))"
data_dir = "$dir/data/worker-$i"

[log]
dir = "$dir/logs/worker-$i"
rotation = "daily"
keep_files = 7

$(tls_config "worker-$i")
EOF
  done
  printf 'coordinators=%s\nworkers=%s\ndu=%s\nbase_port=%s\ninsecure=%s\n' \
    "$coordinators" "$workers" "$du" "$base_port" "$insecure" >"$layout"
}

# A pid file's process, if it is still the one we started.
live_pid() {
  local pidfile=$1 name=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$name" || return 1
  echo "$pid"
}

start() { # node program
  local node=$1 program=$2 pidfile="$dir/run/$1.pid"
  if live_pid "$pidfile" "$node.toml" >/dev/null; then
    echo "  $node already running (pid $(cat "$pidfile"))"
    return
  fi
  mkdir -p "$dir/logs/$node"
  # stdout/stderr only catch what happens before logging starts (bad config).
  # A shell that sourced dtsctl.env must not hand the admin's certificate
  # to a server: each process takes its own from its config.
  nohup env -u DTS_TLS_CA -u DTS_TLS_CERT -u DTS_TLS_KEY -u DTS_INSECURE \
    "$bin_dir/$program" --config "$dir/conf/$node.toml" >>"$dir/logs/$node/startup.out" 2>&1 &
  echo $! >"$pidfile"
  echo "  $node started (pid $!, logs $dir/logs/$node/)"
}

dtsctl() {
  if [ "$insecure" = true ]; then
    "$bin_dir/dtsctl" --coordinators "$(coordinator_addrs)" --insecure "$@"
  else
    env -u DTS_INSECURE "$bin_dir/dtsctl" --coordinators "$(coordinator_addrs)" \
      --tls-ca "$pki/ca.pem" --tls-cert "$pki/admin.pem" --tls-key "$pki/admin.key" "$@"
  fi
}

# Waits up to $1 tenths of a second for `healthy` to pass.
wait_healthy() {
  local _
  for _ in $(seq 1 "$1"); do
    healthy >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# A leader, and every worker we started online.
healthy() {
  local json
  json=$(dtsctl cluster status -o json) || return 1
  grep -q '"role": "leader"' <<<"$json" || return 1
  [ "$(grep -c '"state": "online"' <<<"$json")" -ge "$workers" ]
}

up() {
  parse_flags "$@"
  build
  [ "$insecure" = true ] || write_pki
  write_configs
  write_env
  mkdir -p "$dir/run"
  echo "coordinators ($coordinators):"
  local i
  for i in $(seq 1 "$coordinators"); do start "coordinator-$i" dts-coordinator; done
  echo "workers ($workers x $du DU):"
  for i in $(seq 1 "$workers"); do start "worker-$i" dts-worker; done
  printf "waiting for a leader and %s online workers..." "$workers"
  if wait_healthy 300; then echo " ok"; else echo " not yet (see: $0 status)"; fi
  echo
  echo "cluster directory: $dir (conf/, data/, logs/, run/, pki/)"
  if [ "$insecure" = true ]; then
    echo "transport: PLAINTEXT, no authentication (--insecure)"
  else
    echo "transport: mutual TLS, CA $pki/ca.pem; dtsctl runs as admin"
  fi
  echo "use it:  . $dir/dtsctl.env"
  echo "         dtsctl cluster status"
  echo
  dtsctl cluster status || true
}

status() {
  local f node pid down=0
  if ! compgen -G "$dir/run/*.pid" >/dev/null; then
    echo "nothing started under $dir"
    return 0
  fi
  echo "processes:"
  for f in "$dir"/run/*.pid; do
    node=$(basename "$f" .pid)
    if pid=$(live_pid "$f" "$node.toml"); then
      printf "  %-16s running  pid %-8s rss %s\n" "$node" "$pid" \
        "$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status" 2>/dev/null)"
    else
      printf "  %-16s DOWN     (logs: %s)\n" "$node" "$(ls -t "$dir/logs/$node"/* 2>/dev/null | head -1)"
      down=$((down + 1))
    fi
  done
  echo
  dtsctl cluster status || down=$((down + 1))
  echo
  dtsctl task list 2>/dev/null || true
  echo
  if [ "$down" -eq 0 ] && healthy >/dev/null 2>&1; then
    echo "health: OK (leader elected, every process running, $workers workers online)"
  else
    echo "health: DEGRADED ($down process(es) down or no quorum; logs under $dir/logs/)"
    return 1
  fi
}

down() {
  local f pid
  for f in "$dir"/run/*.pid; do
    [ -e "$f" ] || continue
    if pid=$(live_pid "$f" "$(basename "$f" .pid).toml"); then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "  stopped $(basename "$f" .pid) (pid $pid)"
    fi
    rm -f "$f"
  done
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  up) up "$@" ;;
  status) status ;;
  down) down ;;
  clean) down; rm -rf "$dir"; echo "removed $dir" ;;
  *) usage ;;
esac
