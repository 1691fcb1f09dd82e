#!/usr/bin/env bash
# The main job, end to end, for a newcomer:
#   1. two throwaway MariaDB servers: a source with a sample `shop` database, and
#      an empty destination;
#   2. a local dts cluster: 3 coordinators (Raft) and 2 workers;
#   3. a schema + full + incremental task, created and started with dtsctl;
#   4. writes on the source while it syncs;
#   5. a per-table comparison of row counts and checksums.
#
#   deploy/quickstart.sh        run it (again: reuses what is up)
#   deploy/quickstart.sh down   stop and remove everything it started
#
# Ports: DTS_SOURCE_PORT (3406), DTS_DESTINATION_PORT (3407), coordinators 7701-7703.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/deploy/lib/mariadb.sh"
export DTS_LOCAL_DIR=${DTS_LOCAL_DIR:-$repo/.dts-quickstart}
profile=${DTS_PROFILE:-release}
src_port=${DTS_SOURCE_PORT:-3406}
dst_port=${DTS_DESTINATION_PORT:-3407}
dir=$DTS_LOCAL_DIR

case "${1:-up}" in
  down)
    "$repo/deploy/local-cluster.sh" down
    mariadb_stop "$dir/source"
    mariadb_stop "$dir/destination"
    rm -rf "$dir"
    echo "removed $dir"
    exit 0 ;;
  up) ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac

ensure_mariadb
echo "== databases"
mariadb_start "$dir/source" "$src_port" 1
mariadb_start "$dir/destination" "$dst_port" 2
src() { mariadb -h127.0.0.1 -P"$src_port" -uroot "$@"; }
dst() { mariadb -h127.0.0.1 -P"$dst_port" -uroot "$@"; }

if [ -z "$(src -N -e "SHOW DATABASES LIKE 'shop'")" ]; then
  echo "  loading the sample database 'shop' into the source"
  src <<'SQL'
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200), country CHAR(2),
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (country));
CREATE TABLE products (sku VARCHAR(32) PRIMARY KEY, title VARCHAR(200) NOT NULL, price DECIMAL(10,2) NOT NULL,
  stock INT UNSIGNED NOT NULL, attributes JSON);
CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, sku VARCHAR(32) NOT NULL,
  quantity SMALLINT NOT NULL, placed_at DATETIME(3) NOT NULL, status ENUM('new','paid','shipped') NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id), FOREIGN KEY (sku) REFERENCES products (sku));
INSERT INTO customers (id, name, email, country)
  SELECT seq, CONCAT('Customer ', seq), CONCAT('c', seq, '@example.com'), ELT(1 + seq % 4, 'DE', 'FR', 'JP', 'BR')
  FROM seq_1_to_20000;
INSERT INTO products SELECT CONCAT('SKU-', seq), CONCAT('Product ', seq, ' ✓'), seq % 500 + 0.99, seq % 1000,
  JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue')) FROM seq_1_to_2000;
INSERT INTO orders (customer_id, sku, quantity, placed_at, status)
  SELECT 1 + seq % 20000, CONCAT('SKU-', 1 + seq % 2000), 1 + seq % 5, '2026-01-01' + INTERVAL seq MINUTE,
  ELT(1 + seq % 3, 'new', 'paid', 'shipped') FROM seq_1_to_100000;
CREATE VIEW paid_orders AS SELECT id, customer_id, sku FROM orders WHERE status = 'paid';
SQL
fi

echo "== dts cluster"
"$repo/deploy/local-cluster.sh" up
# The cluster runs mutual TLS; dtsctl.env names its address and the admin's certificate.
dtsctl() { (. "$dir/dtsctl.env" && "$repo/target/$profile/dtsctl" "$@"); }

cat >"$dir/shop-task.toml" <<TOML
name = "quickstart-shop"
du = 2
modes = ["schema", "full", "incremental"]
source_heartbeat = true
verify = "full"

[source]
host = "127.0.0.1"
port = $src_port
user = "root"

[destination]
host = "127.0.0.1"
port = $dst_port
user = "root"

[[objects]]
database = "shop"
TOML

echo
echo "== task"
task=$(dtsctl task list -o json | python3 -c "import json,sys; t=[t['id'] for t in json.load(sys.stdin)['tasks'] if t['name']=='quickstart-shop']; print(t[0] if t else '')")
if [ -z "$task" ]; then
  task=$(dtsctl task create -f "$dir/shop-task.toml" --start -o json | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
  echo "created and started task $task from $dir/shop-task.toml"
fi
phase() { dtsctl task show "$task" -o json | python3 -c "import json,sys; t=json.load(sys.stdin); print(t['status'], t['phase'], t['last_error'])"; }
printf "waiting for schema + full sync"
for _ in $(seq 1 600); do
  read -r status ph err <<<"$(phase)" || true
  [ "$status" = failed ] && { echo; echo "task failed: $err" >&2; exit 1; }
  [ "$ph" = incremental ] && break
  printf "."; sleep 0.5
done
echo " done; now following the binlog"

echo
echo "== writes on the source while the task runs"
src shop <<'SQL'
INSERT INTO customers (id, name, email, country) VALUES (20001, 'Ada', 'ada@example.com', 'GB');
UPDATE products SET price = price * 1.10, stock = stock - 1 WHERE sku IN ('SKU-1', 'SKU-2', 'SKU-3');
INSERT INTO orders (customer_id, sku, quantity, placed_at, status) VALUES (20001, 'SKU-1', 2, NOW(3), 'new');
UPDATE orders SET status = 'shipped' WHERE id <= 500 AND status = 'paid';
DELETE FROM orders WHERE id BETWEEN 99901 AND 100000;
ALTER TABLE customers ADD COLUMN vip BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE customers SET vip = TRUE WHERE id % 1000 = 0;
SQL
echo "  1 customer added, prices changed, orders added/updated/deleted, a column added"

echo
echo "== comparison (source vs destination)"
checksum() { "$@" -N -e "CHECKSUM TABLE shop.$table" | awk '{print $2}'; }
count() { "$@" -N -e "SELECT COUNT(*) FROM shop.$table"; }
all_match=1
printf "%-12s %10s %10s %12s %12s  %s\n" TABLE SRC_ROWS DST_ROWS SRC_SUM DST_SUM RESULT
for table in customers products orders; do
  result=differ
  for _ in $(seq 1 60); do
    s_rows=$(count src); d_rows=$(count dst 2>/dev/null || echo "-")
    s_sum=$(checksum src); d_sum=$(checksum dst 2>/dev/null || echo "-")
    if [ "$s_rows" = "$d_rows" ] && [ "$s_sum" = "$d_sum" ]; then result=match; break; fi
    sleep 0.5
  done
  [ "$result" = match ] || all_match=0
  printf "%-12s %10s %10s %12s %12s  %s\n" "$table" "$s_rows" "$d_rows" "$s_sum" "$d_sum" "$result"
done
echo
echo "== verification (dts compares the two sides, chunk by chunk, through the task's route)"
dtsctl task verify "$task" --run --wait | sed -n '1,12p'
echo
dtsctl task show "$task" | sed -n '1,/^spec/p' | sed '$d'
echo
if [ "$all_match" = 1 ]; then
  echo "source and destination match."
else
  echo "source and destination differ." >&2
fi
cat <<EOF
Next (dtsctl talks mutual TLS with the admin certificate; first run  . $dir/dtsctl.env):
  watch it:        dtsctl task show $task --watch
  write more:      mariadb -h127.0.0.1 -P$src_port -uroot shop
  kill a worker:   kill -9 \$(cat $dir/run/worker-1.pid)   (the task moves, nothing is lost)
  verify again:    dtsctl task verify $task --run --wait
  as a viewer:     DTS_TLS_CERT=$dir/pki/viewer.pem DTS_TLS_KEY=$dir/pki/viewer.key dtsctl task stop $task   (refused)
  metrics:         for p in 7801 7802 7803; do curl -s http://127.0.0.1:\$p/metrics; done | grep ^dts_task   (the leader's; see deploy/monitoring/)
  clean up:        deploy/quickstart.sh down
EOF
[ "$all_match" = 1 ]
