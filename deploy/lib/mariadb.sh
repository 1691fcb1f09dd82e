# Helpers for throwaway MariaDB servers (sourced by deploy scripts).

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs the MariaDB server and client when missing (Debian/Ubuntu).
ensure_mariadb() {
  if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing mariadb-server..."
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq mariadb-server mariadb-client >/dev/null
  fi
  # Debian starts a system server on install; dts uses its own instances.
  if command -v systemctl >/dev/null && systemctl is-active --quiet mariadb 2>/dev/null; then
    as_root systemctl stop mariadb || true
  fi
  export PATH="$PATH:/usr/sbin"
}

# mariadb_start DIR PORT SERVER_ID: a server with ROW/FULL binlog on 127.0.0.1:PORT.
mariadb_start() {
  local dir=$1 port=$2 id=$3
  if [ -f "$dir/mysqld.pid" ] && kill -0 "$(cat "$dir/mysqld.pid")" 2>/dev/null; then
    echo "  mariadb on port $port already running"
    return
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; set DTS_SOURCE_PORT / DTS_DESTINATION_PORT" >&2
    return 1
  fi
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db --user="$(id -un)" >"$dir/install.log" 2>&1
  fi
  nohup mariadbd --no-defaults --datadir="$dir/data" --port="$port" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --bind-address=127.0.0.1 --server-id="$id" --log-bin="$dir/binlog" \
    --binlog-format=ROW --binlog-row-image=FULL --user="$(id -un)" --skip-name-resolve \
    --innodb-buffer-pool-size=64M --max-allowed-packet=256M >>"$dir/mariadb.log" 2>&1 &
  for _ in $(seq 1 100); do
    mariadb -h127.0.0.1 -P"$port" -uroot -e "SELECT 1" >/dev/null 2>&1 && { echo "  mariadb started on 127.0.0.1:$port"; return; }
    sleep 0.1
  done
  echo "mariadb on port $port did not start; see $dir/mariadb.log" >&2
  return 1
}

mariadb_stop() {
  local dir=$1 pid
  [ -f "$dir/mysqld.pid" ] || return 0
  pid=$(cat "$dir/mysqld.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
