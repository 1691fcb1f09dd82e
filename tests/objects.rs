//! Objects through real processes: databases and tables renamed on the way,
//! operation filters, shards of two sources merged into one table, and a
//! copy of a database beside itself on one server, each across schema,
//! full and incremental sync, compared with "the source as the route says".

use dts_tests::compare::{assert_routed, routed_difference};
use dts_tests::converge::{assert_healthy, wait_caught_up, wait_task_past};
use dts_tests::fixtures::sync_task;
use dts_tests::{wait_for, MariaDb, TestCluster};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Waits until the destination is the source as the route says.
async fn wait_routed(source: &MariaDb, destination: &MariaDb, spec: &str) -> anyhow::Result<()> {
    let last = std::sync::Mutex::new(None);
    let waited = wait_for(
        "the destination to equal the routed source",
        TIMEOUT,
        || {
            let last = &last;
            async move {
                let difference = routed_difference(source, destination, spec).await?;
                let equal = difference.is_none();
                *last.lock().unwrap_or_else(|p| p.into_inner()) = difference;
                Ok(equal.then_some(()))
            }
        },
    )
    .await;
    waited.map_err(|e| anyhow::anyhow!("{e:#}; last difference: {:?}", last.lock().ok()))
}

#[tokio::test]
async fn renamed_databases_and_tables_and_filtered_operations_hold_in_every_phase(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; USE shop; \
             CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40)); \
             CREATE TABLE orders (id INT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(10,2), KEY by_customer (customer)); \
             CREATE TABLE events (id INT PRIMARY KEY, kind VARCHAR(20)); \
             CREATE TABLE secret (id INT PRIMARY KEY); \
             INSERT INTO customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_50; \
             INSERT INTO orders SELECT seq, seq % 50 + 1, seq * 1.5 FROM seq_1_to_12000; \
             INSERT INTO events SELECT seq, 'seeded' FROM seq_1_to_20; \
             INSERT INTO secret VALUES (1)",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let objects = r#"[[objects]]
database = "shop"
to = "shop_eu"
tables = ["customers", { name = "orders", to = "orders_eu" }, { name = "events", dml = ["insert", "update"], ddl = ["create index"] }]"#;
    let spec = sync_task(
        "renames",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        objects,
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    // Full sync: every selected table under its new name, the rest nowhere.
    assert_routed(&source, &destination, &spec).await?;
    let databases = destination
        .query_value(
            "SELECT GROUP_CONCAT(SCHEMA_NAME ORDER BY SCHEMA_NAME) FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME IN ('shop', 'shop_eu')",
        )
        .await?;
    assert_eq!(databases.as_deref(), Some("shop_eu"));
    let tables = destination
        .query_value("SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop_eu'")
        .await?;
    assert_eq!(tables.as_deref(), Some("customers,events,orders_eu"));

    // Incremental: DML and DDL on renamed tables; deletes of `events` stay out.
    source
        .exec(
            "USE shop; \
             INSERT INTO customers VALUES (51, 'new'); UPDATE customers SET name = 'renamed' WHERE id = 1; \
             DELETE FROM customers WHERE id = 2; \
             UPDATE orders SET amount = amount + 1 WHERE id <= 100; DELETE FROM orders WHERE id > 11990; \
             ALTER TABLE orders ADD COLUMN note VARCHAR(20) NULL; \
             INSERT INTO orders VALUES (20001, 1, 9.99, 'after alter'); \
             CREATE INDEX by_amount ON orders (amount); \
             INSERT INTO events VALUES (21, 'inserted'); UPDATE events SET kind = 'updated' WHERE id = 1; \
             DELETE FROM events WHERE id IN (2, 3); \
             INSERT INTO events VALUES (2, 'deleted then back'); \
             ALTER TABLE events ADD COLUMN extra INT NULL; CREATE INDEX by_kind ON events (kind); \
             INSERT INTO events VALUES (22, 'with extra', 5); \
             INSERT INTO secret VALUES (2)",
        )
        .await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    for (db, table) in [("shop_eu", "customers"), ("shop_eu", "orders_eu")] {
        let source_name = if table == "orders_eu" {
            "orders"
        } else {
            table
        };
        let (a, b) = (
            source.checksum("shop", source_name).await?,
            destination.checksum(db, table).await?,
        );
        anyhow::ensure!(a == b, "{db}.{table}: source {a:?}, destination {b:?}");
    }
    let note = destination
        .query_value("SELECT note FROM shop_eu.orders_eu WHERE id = 20001")
        .await?;
    assert_eq!(note.as_deref(), Some("after alter"));
    let index = destination
        .query_value("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop_eu' AND TABLE_NAME = 'orders_eu' AND INDEX_NAME = 'by_amount'")
        .await?;
    assert_eq!(index.as_deref(), Some("1"));
    // The deleted row 3 is kept; row 2, deleted and inserted again, is overwritten.
    let events = destination
        .query_value("SELECT GROUP_CONCAT(CONCAT(id, ':', kind) ORDER BY id) FROM shop_eu.events WHERE id <= 3 OR id = 21")
        .await?;
    assert_eq!(
        events.as_deref(),
        Some("1:updated,2:deleted then back,3:seeded,21:inserted")
    );
    // Its ddl option lets CREATE INDEX through, not ALTER TABLE; the rows
    // written after the ALTER still arrive, without the new column.
    let events_shape = destination
        .query_value("SELECT CONCAT((SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop_eu' AND TABLE_NAME = 'events'), ' ', (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop_eu' AND TABLE_NAME = 'events' AND INDEX_NAME = 'by_kind'), ' ', (SELECT kind FROM shop_eu.events WHERE id = 22))")
        .await?;
    assert_eq!(events_shape.as_deref(), Some("id,kind 1 with extra"));
    let leaked = destination
        .query_value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'secret'")
        .await?;
    assert_eq!(leaked.as_deref(), Some("0"));

    // Renaming a selected table to a name the task does not select cannot be
    // followed: the task fails with the statement, not silently.
    source
        .exec("USE shop; RENAME TABLE customers TO customers_archive")
        .await?;
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    assert!(
        failed
            .last_error
            .contains("RENAME TABLE customers TO customers_archive")
            && failed.last_error.contains("does not select"),
        "{}",
        failed.last_error
    );
    Ok(())
}

/// A row filter in both phases: the full copy takes the rows it holds for,
/// and incremental sync follows rows as UPDATEs move them in (an INSERT on
/// the destination) and out (a DELETE), with a renamed table and column.
#[tokio::test]
async fn rows_moving_in_and_out_of_a_where_filter_follow_it_in_every_phase() -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; USE shop; \
             CREATE TABLE orders (id INT PRIMARY KEY, region VARCHAR(8) NOT NULL, amount DECIMAL(10,2), \
               placed DATE, note VARCHAR(20)) DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_general_ci; \
             CREATE TABLE audit (id INT PRIMARY KEY, region CHAR(2) CHARACTER SET latin1, n INT); \
             INSERT INTO orders SELECT seq, ELT(seq % 3 + 1, 'eu', 'EU ', 'us'), seq % 40, \
               '2024-01-01' + INTERVAL seq % 60 DAY, NULL FROM seq_1_to_3000; \
             INSERT INTO audit SELECT seq, ELT(seq % 2 + 1, 'eu', 'ÄU'), seq FROM seq_1_to_100",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    // `region = 'eu'` holds for 'EU ' too (a case- and pad-insensitive
    // collation); `note` is left out yet may be filtered on.
    let objects = r#"[[objects]]
database = "shop"
to = "shop_eu"
tables = [
  { name = "orders", to = "orders_eu", where = "region = 'eu' AND amount >= 10 AND placed < '2024-02-15' AND (note IS NULL OR note NOT LIKE 'hold%')", exclude_columns = ["note"], rename_columns = { amount = "total" } },
  { name = "audit", where = "region <> 'äu' AND MOD(n, 4) <> 0" },
]"#;
    let spec = sync_task(
        "where",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        objects,
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    assert_routed(&source, &destination, &spec).await?;
    let copied = destination
        .query_value("SELECT COUNT(*) FROM shop_eu.orders_eu")
        .await?;
    let expected = source
        .query_value(
            "SELECT COUNT(*) FROM shop.orders WHERE region = 'eu' AND amount >= 10 AND placed < '2024-02-15'",
        )
        .await?;
    assert_eq!(copied, expected);
    assert!(
        copied
            .as_deref()
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0)
            > 500
    );

    source
        .exec(
            "USE shop; \
             UPDATE orders SET amount = 5 WHERE id BETWEEN 1 AND 300; \
             UPDATE orders SET amount = 25 WHERE id BETWEEN 301 AND 600; \
             UPDATE orders SET region = 'us' WHERE id BETWEEN 601 AND 700; \
             UPDATE orders SET region = 'Eu' WHERE id BETWEEN 701 AND 800; \
             UPDATE orders SET note = 'hold me' WHERE id BETWEEN 801 AND 900; \
             UPDATE orders SET note = 'holdx' WHERE id BETWEEN 801 AND 850; \
             UPDATE orders SET note = 'ok' WHERE id BETWEEN 851 AND 860; \
             UPDATE orders SET id = id + 10000 WHERE id BETWEEN 901 AND 950; \
             UPDATE orders SET placed = '2024-03-01' WHERE id BETWEEN 951 AND 1000; \
             DELETE FROM orders WHERE id BETWEEN 1001 AND 1100; \
             INSERT INTO orders SELECT seq, 'eu', seq % 40, '2024-01-10', NULL FROM seq_20001_to_20200; \
             UPDATE audit SET region = 'äu' WHERE id <= 10; \
             UPDATE audit SET n = n + 1 WHERE id > 50",
        )
        .await?;
    wait_routed(&source, &destination, &spec).await?;
    assert_healthy(&cluster, &task).await?;
    Ok(())
}

/// A filter naming a column the table has not fails the task at its
/// prechecks, naming the field; nothing is copied.
#[tokio::test]
async fn a_filter_on_an_unknown_column_fails_the_prechecks_with_the_field() -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, region VARCHAR(8) \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci); INSERT INTO shop.orders VALUES (1, 'eu')",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(1)
        .start()
        .await?;
    for (condition, reason) in [
        ("regio = 'eu'", "has no column `regio`"),
        (
            "region = 'eu'",
            "collation utf8mb4_unicode_ci is not one dts evaluates",
        ),
    ] {
        let objects = format!(
            "[[objects]]\ndatabase = \"shop\"\ntables = [{{ name = \"orders\", where = \"{condition}\" }}]"
        );
        let spec = sync_task(
            "bad-where",
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            &objects,
            1,
        );
        let task = cluster.create_task(&spec, true).await?.id;
        let failed = cluster
            .wait_for_task_status(&task, "failed", TIMEOUT)
            .await?;
        assert!(
            failed.last_error.contains("objects[0].tables[0].where")
                && failed.last_error.contains(reason),
            "{}",
            failed.last_error
        );
    }
    let copied = destination
        .query_value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'")
        .await?;
    assert_eq!(copied.as_deref(), Some("0"));
    Ok(())
}

/// Accounts migrate with the schema: created with the source's password
/// hash (the same password logs in on the destination) and grants mapped
/// through the route; a grant on an unselected database stays behind. An
/// account the destination already has, or the source lacks, is refused by
/// the prechecks naming its entry.
#[tokio::test]
async fn accounts_migrate_with_their_grants_mapped_and_log_in_with_the_source_password(
) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, v INT); \
             INSERT INTO shop.orders VALUES (1, 1), (2, 2); CREATE DATABASE other; \
             CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; \
             GRANT SELECT, INSERT ON shop.* TO 'app'@'%'; GRANT SELECT ON other.* TO 'app'@'%'; \
             CREATE USER 'report'@'127.0.0.1' IDENTIFIED BY 'report-pw'; \
             GRANT SELECT ON shop.orders TO 'report'@'127.0.0.1'; \
             CREATE USER 'idle'@'%'",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(3)
        .start()
        .await?;
    let task_with = |name: &str, to: &str, accounts: &str| {
        format!(
            "accounts = {accounts}\n{}",
            sync_task(
                name,
                source.port,
                destination.port,
                &["schema", "full", "incremental"],
                &format!("[[objects]]\ndatabase = \"shop\"\nto = \"{to}\""),
                1,
            )
        )
    };
    let spec = task_with(
        "accounts",
        "shop_eu",
        r#"["app@%", "'report'@'127.0.0.1'"]"#,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    assert_healthy(&cluster, &task).await?;

    let login = |user: &str, password: &str| {
        format!("mysql://{user}:{password}@127.0.0.1:{}/", destination.port)
    };
    let mut app = mysql_async::Conn::from_url(login("app", "app-pw")).await?;
    app.query_drop("INSERT INTO shop_eu.orders VALUES (3, 3)")
        .await?;
    let count: Option<u64> = app
        .query_first("SELECT COUNT(*) FROM shop_eu.orders")
        .await?;
    assert_eq!(count, Some(3));
    let grants: Vec<String> = app.query("SHOW GRANTS").await?;
    assert!(
        grants.iter().any(|g| g.contains("`shop_eu`.*"))
            && !grants.iter().any(|g| g.contains("other")),
        "{grants:?}"
    );
    app.disconnect().await?;
    let mut report = mysql_async::Conn::from_url(login("report", "report-pw")).await?;
    let count: Option<u64> = report
        .query_first("SELECT COUNT(*) FROM shop_eu.orders")
        .await?;
    assert_eq!(count, Some(3));
    assert!(report
        .query_drop("INSERT INTO shop_eu.orders VALUES (4, 4)")
        .await
        .is_err());
    report.disconnect().await?;
    let idle = destination
        .query_value("SELECT COUNT(*) FROM mysql.user WHERE User = 'idle'")
        .await?;
    assert_eq!(idle.as_deref(), Some("0"));

    for (accounts, reason) in [
        (r#"["app@%"]"#, "already exists on the destination"),
        (r#"["ghost@%"]"#, "the source has no account `ghost@%`"),
    ] {
        let spec = task_with("accounts-refused", "shop_again", accounts);
        let refused = cluster.create_task(&spec, true).await?.id;
        let failed = cluster
            .wait_for_task_status(&refused, "failed", TIMEOUT)
            .await?;
        assert!(
            failed.last_error.contains("accounts[0]") && failed.last_error.contains(reason),
            "{}",
            failed.last_error
        );
    }
    let created = destination
        .query_value(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop_again'",
        )
        .await?;
    assert_eq!(created.as_deref(), Some("0"));
    Ok(())
}

/// DDL of views, routines and indexes followed from the binlog into a
/// renamed database: qualified names in a view's body point at the copy,
/// ALTER VIEW and DROP INDEX arrive, routines are created in the copy.
#[tokio::test]
async fn views_routines_and_indexes_from_the_binlog_take_the_mapped_names() -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO shop.t VALUES (1, 10), (2, 20)",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(1)
        .start()
        .await?;
    let spec = sync_task(
        "mapped-ddl",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"shop\"\nto = \"shop_eu\"",
        1,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    source
        .exec(
            "USE shop; CREATE VIEW big AS SELECT id FROM shop.t WHERE v > 15; \
             ALTER VIEW big AS SELECT id, v FROM shop.t WHERE v > 5; \
             CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2; \
             CREATE PROCEDURE touch() UPDATE shop.t SET v = v + 1; \
             CREATE INDEX by_v ON t (v); CREATE INDEX gone ON t (v, id); DROP INDEX gone ON t; \
             INSERT INTO t VALUES (3, 30)",
        )
        .await?;
    wait_caught_up(&source, &destination, 1, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    assert_routed(&source, &destination, &spec).await?;
    // The view reads the copy, with ALTER VIEW's definition.
    let view = destination
        .query_value("SELECT GROUP_CONCAT(CONCAT(id, ':', v) ORDER BY id) FROM shop_eu.big")
        .await?;
    assert_eq!(view.as_deref(), Some("1:10,2:20,3:30"));
    let body = destination
        .query_value("SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop_eu' AND TABLE_NAME = 'big'")
        .await?
        .unwrap_or_default();
    assert!(
        body.contains("`shop_eu`.`t`") && !body.contains("`shop`."),
        "{body}"
    );
    let routines = destination
        .query_value("SELECT GROUP_CONCAT(ROUTINE_NAME ORDER BY ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop_eu'")
        .await?;
    assert_eq!(routines.as_deref(), Some("touch,twice"));
    let twice = destination.query_value("SELECT shop_eu.twice(21)").await?;
    assert_eq!(twice.as_deref(), Some("42"));
    let indexes = destination
        .query_value("SELECT GROUP_CONCAT(DISTINCT INDEX_NAME ORDER BY INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop_eu' AND TABLE_NAME = 't'")
        .await?;
    assert_eq!(indexes.as_deref(), Some("by_v,PRIMARY"));
    let leaked = destination
        .query_value("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'")
        .await?;
    assert_eq!(leaked.as_deref(), Some("0"));
    Ok(())
}

/// Shards whose keys collide merge into one table when the route records
/// each row's source table in a column that joins the primary key: in the
/// full copy and in incremental sync, updates and deletes reach the row of
/// their own shard only.
#[tokio::test]
async fn shards_with_colliding_keys_merge_with_a_source_column() -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shard_a; CREATE DATABASE shard_b; USE shard_a; \
             CREATE TABLE shard_a.orders (id INT PRIMARY KEY, v VARCHAR(10)); \
             CREATE TABLE shard_b.orders (id INT PRIMARY KEY, v VARCHAR(10)); \
             INSERT INTO shard_a.orders SELECT seq, CONCAT('a', seq) FROM seq_1_to_1000; \
             INSERT INTO shard_b.orders SELECT seq, CONCAT('b', seq) FROM seq_1_to_1000",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let routes = r#"[[routes]]
database = "shard_*"
table = "orders"
to_database = "merged"
source_column = "origin""#;
    let spec = sync_task(
        "merge-origin",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        routes,
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    assert_routed(&source, &destination, &spec).await?;
    let rows = destination
        .query_value("SELECT COUNT(*) FROM merged.orders")
        .await?;
    assert_eq!(rows.as_deref(), Some("2000"));
    source
        .exec(
            "UPDATE shard_a.orders SET v = 'a-changed' WHERE id <= 10; \
             DELETE FROM shard_b.orders WHERE id BETWEEN 5 AND 15; \
             INSERT INTO shard_b.orders VALUES (5000, 'b-new'); INSERT INTO shard_a.orders VALUES (5000, 'a-new'); \
             UPDATE shard_b.orders SET id = id + 10000 WHERE id BETWEEN 20 AND 29",
        )
        .await?;
    wait_routed(&source, &destination, &spec).await?;
    assert_healthy(&cluster, &task).await?;
    let key = destination
        .query_value(
            "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = 'merged' AND TABLE_NAME = 'orders' AND INDEX_NAME = 'PRIMARY'",
        )
        .await?;
    assert_eq!(key.as_deref(), Some("id,origin"));
    Ok(())
}

/// Four shard tables on two sources, merged by one route rule into one
/// destination table by two tasks, while every shard takes writes.
#[tokio::test]
async fn shards_of_two_sources_merge_into_one_table_under_concurrent_writes() -> anyhow::Result<()>
{
    let sources = [MariaDb::start(1).await?, MariaDb::start(2).await?];
    let destination = MariaDb::start(3).await?;
    // Each shard table owns a range of ids, so merged keys never collide.
    for (s, source) in sources.iter().enumerate() {
        let db = format!("shard_{}", s + 1);
        let mut sql = format!("CREATE DATABASE {db}; USE {db};");
        for (t, table) in ["orders_a", "orders_b"].iter().enumerate() {
            let base = (s * 2 + t + 1) * 1_000_000;
            sql.push_str(&format!(
                "CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(30), n INT); \
                 INSERT INTO {table} SELECT {base} + seq, CONCAT('{db}.{table}-', seq), 0 FROM seq_1_to_3000;"
            ));
        }
        sql.push_str("CREATE TABLE other (id INT PRIMARY KEY); INSERT INTO other VALUES (1);");
        source.exec(&sql).await?;
    }
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    // The later task finds the merged table there: conflict_mode "ignore".
    let route = "[[routes]]\ndatabase = \"shard_*\"\ntable = \"orders_*\"\nto_database = \"merged\"\nto_table = \"orders\"";
    let specs: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(s, source)| {
            let spec = sync_task(
                &format!("shard-{}", s + 1),
                source.port,
                destination.port,
                &["schema", "full", "incremental"],
                route,
                1,
            );
            format!("conflict_mode = \"ignore\"\n{spec}")
        })
        .collect();
    // Writers on every shard from before the tasks start until after both
    // are in incremental.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        for (t, table) in ["orders_a", "orders_b"].iter().enumerate() {
            let base = (s * 2 + t + 1) * 1_000_000;
            let mut conn = source.conn().await?;
            let stop = stop.clone();
            let sql_db = format!("shard_{}", s + 1);
            let table = table.to_string();
            writers.push(tokio::spawn(async move {
                use mysql_async::prelude::Queryable;
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let id = base as u64 + 3000 + n;
                    let statements = format!(
                        "INSERT INTO {sql_db}.{table} VALUES ({id}, 'written-{n}', 1); \
                         UPDATE {sql_db}.{table} SET n = n + 1 WHERE id = {} ; \
                         DELETE FROM {sql_db}.{table} WHERE id = {}",
                        base as u64 + 1 + n % 3000,
                        base as u64 + 1 + (n * 7) % 3000
                    );
                    conn.query_drop(statements).await?;
                }
                anyhow::Ok(n)
            }));
        }
    }
    let mut tasks = Vec::new();
    for spec in &specs {
        tasks.push(cluster.run_task_until(spec, "incremental", TIMEOUT).await?);
    }
    // Shard DDL does not reach the merged table, and says so.
    sources[0]
        .exec("ALTER TABLE shard_1.orders_a ADD INDEX by_v (v)")
        .await?;
    wait_for("the merged-table DDL to be reported", TIMEOUT, || async {
        let t = cluster.task(&tasks[0]).await?;
        let position = t.checkpoint.map(|c| c.position).unwrap_or_default();
        Ok(position
            .contains("merged table `merged`.`orders`")
            .then_some(()))
    })
    .await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for writer in writers {
        written += writer.await??;
    }
    println!("{written} write rounds across the shards");
    anyhow::ensure!(written > 0, "the writers wrote nothing");
    // The union of both sources' shards, as each task's route says.
    let mut expected = Vec::new();
    for source in &sources {
        for table in ["orders_a", "orders_b"] {
            let db = if source.port == sources[0].port {
                "shard_1"
            } else {
                "shard_2"
            };
            expected.extend(source.rows_as_hex(db, table).await?);
        }
    }
    expected.sort();
    let held = std::sync::atomic::AtomicUsize::new(0);
    wait_for(
        "the merged table to hold every shard's rows",
        TIMEOUT,
        || {
            let (held, expected, destination) = (&held, &expected, &destination);
            async move {
                let mut got = destination.rows_as_hex("merged", "orders").await?;
                got.sort();
                held.store(got.len(), std::sync::atomic::Ordering::Relaxed);
                Ok((&got == expected).then_some(()))
            }
        },
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e:#}: expected {} rows, the destination has {}",
            expected.len(),
            held.load(std::sync::atomic::Ordering::Relaxed)
        )
    })?;
    for task in &tasks {
        assert_healthy(&cluster, task).await?;
    }
    let indexes = destination
        .query_value("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'merged' AND INDEX_NAME = 'by_v'")
        .await?;
    assert_eq!(indexes.as_deref(), Some("0"));
    let others = destination
        .query_value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'other'")
        .await?;
    assert_eq!(others.as_deref(), Some("0"));
    Ok(())
}

/// Two one-way tasks write one destination table, each from a source of
/// its own (disjoint keys): the table and its deferred index are created
/// once, each task keeps its own checkpoints and fence, and one ALTER run
/// on both sources reaches the shared table once: the second task finds
/// the column there, exactly as its source has it, and goes on.
#[tokio::test]
async fn two_tasks_share_one_destination_table_and_its_schema_changes() -> anyhow::Result<()> {
    let sources = [MariaDb::start(1).await?, MariaDb::start(2).await?];
    let destination = MariaDb::start(3).await?;
    for (s, source) in sources.iter().enumerate() {
        let base = (s + 1) * 1_000_000;
        source
            .exec(&format!(
                "CREATE DATABASE shop; USE shop; \
                 CREATE TABLE orders (id INT PRIMARY KEY, v VARCHAR(30), KEY by_v (v)); \
                 INSERT INTO orders SELECT {base} + seq, CONCAT('s{s}-', seq) FROM seq_1_to_2000"
            ))
            .await?;
    }
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let mut tasks = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        let spec = sync_task(
            &format!("into-one-{s}"),
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            "[[objects]]\ndatabase = \"shop\"",
            1,
        );
        // Both start at once; whichever creates the table, the other finds it.
        let created = cluster
            .create_task(&format!("conflict_mode = \"ignore\"\n{spec}"), true)
            .await?;
        tasks.push(created.id);
    }
    for task in &tasks {
        cluster
            .wait_for_task_phase(task, "incremental", TIMEOUT)
            .await?;
    }
    for (s, source) in sources.iter().enumerate() {
        let id = (s + 1) * 1_000_000 + 5000;
        source
            .exec(&format!(
                "ALTER TABLE shop.orders ADD COLUMN note VARCHAR(20) NULL; \
                 INSERT INTO shop.orders VALUES ({id}, 'after', 'from {s}')"
            ))
            .await?;
    }
    for (task, source) in tasks.iter().zip(&sources) {
        wait_task_past(&cluster, task, source).await?;
        assert_healthy(&cluster, task).await?;
    }
    let mut expected = Vec::new();
    for source in &sources {
        expected.extend(source.rows_as_hex("shop", "orders").await?);
    }
    expected.sort();
    let mut got = destination.rows_as_hex("shop", "orders").await?;
    got.sort();
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected,
        "the shared table is not the union of its sources"
    );
    let indexes = destination
        .query_value(
            "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'orders' AND INDEX_NAME = 'by_v'",
        )
        .await?;
    assert_eq!(indexes.as_deref(), Some("1"));
    let owners = destination
        .query_value("SELECT COUNT(*) FROM dts_meta.owners")
        .await?;
    assert_eq!(owners.as_deref(), Some("2"));
    Ok(())
}

/// Source and destination are one server: `shop` is copied to `shop_copy`
/// beside it, and what dts writes there is never read back as a change.
#[tokio::test]
async fn a_database_copied_beside_itself_on_one_server_stays_in_sync_and_idles_quietly(
) -> anyhow::Result<()> {
    let server = MariaDb::start(1).await?;
    server
        .exec(
            "CREATE DATABASE shop; USE shop; \
             CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); \
             CREATE VIEW recent AS SELECT id, v FROM t WHERE id > 5; \
             INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "beside",
        server.port,
        server.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"shop\"\nto = \"shop_copy\"",
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    server
        .exec(
            "USE shop; INSERT INTO t VALUES (1001, 'new'); UPDATE t SET v = 'changed' WHERE id <= 10; \
             DELETE FROM t WHERE id BETWEEN 500 AND 520; ALTER TABLE t ADD COLUMN w INT NULL; \
             INSERT INTO t VALUES (1002, 'after alter', 7)",
        )
        .await?;
    wait_routed(&server, &server, &spec).await?;
    assert_healthy(&cluster, &task).await?;
    // The view reads the copy, not the original.
    let view = server
        .query_value("SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop_copy' AND TABLE_NAME = 'recent'")
        .await?
        .unwrap_or_default();
    assert!(
        view.contains("`shop_copy`.`t`") && !view.contains("`shop`."),
        "{view}"
    );
    // Caught up and idle, the task writes nothing more: its own checkpoint
    // writes, read back from the binlog, are not taken as changes to apply
    // (which would write another checkpoint, and so on).
    wait_for("the task to apply the last change", TIMEOUT, || async {
        let position = server.binlog_end().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok((server.binlog_end().await? == position).then_some(()))
    })
    .await?;
    let quiet_from = server.binlog_end().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.binlog_end().await?,
        quiet_from,
        "an idle same-server task kept writing"
    );
    Ok(())
}

#[tokio::test]
async fn selected_and_renamed_columns_hold_in_every_phase_and_through_alters() -> anyhow::Result<()>
{
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; USE shop; \
             CREATE TABLE orders (id INT PRIMARY KEY, region CHAR(2) NOT NULL, amount DECIMAL(10,2), \
               secret VARCHAR(20), KEY by_secret (secret), KEY by_amount (amount)); \
             CREATE TABLE events (id INT PRIMARY KEY, kind VARCHAR(20), payload BLOB); \
             INSERT INTO orders SELECT seq, IF(seq % 2, 'eu', 'us'), seq / 4, CONCAT('s', seq) FROM seq_1_to_9000; \
             INSERT INTO events SELECT seq, 'seeded', REPEAT('x', seq) FROM seq_1_to_100",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let objects = r#"[[objects]]
database = "shop"
to = "shop_eu"
tables = [
  { name = "orders", to = "orders_eu", columns = ["id", "region", "amount"], rename_columns = { amount = "total" } },
  { name = "events", exclude_columns = ["payload"] },
]"#;
    let spec = sync_task(
        "columns",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        objects,
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    assert_routed(&source, &destination, &spec).await?;
    let columns = |table: &str| {
        format!(
            "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'shop_eu' AND TABLE_NAME = '{table}'"
        )
    };
    assert_eq!(
        destination
            .query_value(&columns("orders_eu"))
            .await?
            .as_deref(),
        Some("id,region,total")
    );
    // The index on the renamed column came along (added after the copy); the
    // one on the column left out did not.
    let indexes = destination
        .query_value("SELECT GROUP_CONCAT(DISTINCT INDEX_NAME ORDER BY INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop_eu' AND TABLE_NAME = 'orders_eu'")
        .await?;
    assert_eq!(indexes.as_deref(), Some("by_amount,PRIMARY"));

    source
        .exec(
            "USE shop; \
             UPDATE orders SET amount = amount + 1, secret = 'changed' WHERE id <= 50; \
             DELETE FROM orders WHERE id > 8990; \
             ALTER TABLE orders MODIFY amount DECIMAL(14,3); \
             INSERT INTO orders VALUES (10001, 'eu', 123.456, 'x'); \
             ALTER TABLE orders ADD COLUMN extra INT NULL AFTER id; \
             INSERT INTO orders (id, extra, region, amount, secret) VALUES (10002, 7, 'us', 1.5, 'y'); \
             UPDATE orders SET extra = 1 WHERE id <= 10; \
             ALTER TABLE events ADD COLUMN added INT NULL; \
             INSERT INTO events VALUES (101, 'after', 'p', 5); UPDATE events SET added = 1 WHERE id = 1; \
             ALTER TABLE events MODIFY payload MEDIUMBLOB; \
             INSERT INTO events VALUES (102, 'later', 'q', 6)",
        )
        .await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    assert_routed(&source, &destination, &spec).await?;
    assert_eq!(
        destination
            .query_value(&columns("orders_eu"))
            .await?
            .as_deref(),
        Some("id,region,total")
    );
    let total_type = destination
        .query_value("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop_eu' AND TABLE_NAME = 'orders_eu' AND COLUMN_NAME = 'total'")
        .await?;
    assert_eq!(total_type.as_deref(), Some("decimal(14,3)"));
    assert_eq!(
        destination
            .query_value(&columns("events"))
            .await?
            .as_deref(),
        Some("id,kind,added")
    );
    Ok(())
}

/// A worker SIGKILLed in the middle of the full copy and again in the middle
/// of incremental sync, on a task that renames a database, a table and a
/// column and leaves a column out, under a write load: the destination ends
/// equal to the source as the route says, every transaction applied once.
#[tokio::test]
async fn worker_sigkills_mid_full_and_mid_incremental_on_a_mapped_filtered_task_lose_and_repeat_nothing(
) -> anyhow::Result<()> {
    use dts_tests::load::{Load, LOAD_SCHEMA};
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source.exec(LOAD_SCHEMA).await?;
    source
        .exec(
            "USE load_db; INSERT INTO items SELECT seq, seq % 13, CONCAT('seed-', seq), seq / 7, \
             NOW(6) FROM seq_1_to_200000",
        )
        .await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(1)
        .worker(1)
        .start()
        .await?;
    let objects = r#"[[objects]]
database = "load_db"
to = "load_eu"
tables = [
  { name = "items", to = "goods", exclude_columns = ["updated"], rename_columns = { price = "cost" }, where = "price >= 2 AND price < 4 OR grp IN (3, 5)" },
  "counters",
]"#;
    let spec = sync_task(
        "mapped-kills",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        objects,
        1,
    );
    let load = Load::start(&source, 1).await?;
    let task = cluster.create_task(&spec, true).await?.id;
    let chunks_done = "SELECT COUNT(*) FROM dts_meta.chunks WHERE done = 1";
    wait_for("a few chunks copied", TIMEOUT, || async {
        let done = destination.query_value(chunks_done).await.ok().flatten();
        Ok((done.and_then(|d| d.parse::<u64>().ok()).unwrap_or(0) >= 3).then_some(()))
    })
    .await?;
    let first = cluster.task(&task).await?;
    cluster.worker(&first.worker_id)?.process.kill();
    let moved = cluster
        .wait_for_task_moved(&task, &first.worker_id, TIMEOUT)
        .await?;
    let second = cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    load.wait_for_more(200, TIMEOUT).await?;
    cluster.worker(&second.worker_id)?.process.kill();
    // The first worker is gone too: a fresh one takes the task over.
    cluster.add_worker(1)?;
    cluster
        .wait_for_task_moved(&task, &second.worker_id, TIMEOUT)
        .await?;
    load.wait_for_more(200, TIMEOUT).await?;
    let committed = load.stop().await?;
    println!(
        "{committed} source transactions; moved at epoch {} and again",
        moved.epoch
    );
    wait_caught_up(&source, &destination, 1, TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs()))?;
    assert_healthy(&cluster, &task).await?;
    assert_routed(&source, &destination, &spec).await?;
    // Every load transaction bumps one counter once: lost or repeated ones show.
    let sum = destination
        .query_value("SELECT SUM(n) FROM load_eu.counters")
        .await?;
    assert_eq!(sum, Some(committed.to_string()));
    Ok(())
}

/// Two thousand tables, renamed by one route rule with the destination's
/// names in lower case, through schema, full and incremental sync.
#[tokio::test]
async fn two_thousand_tables_renamed_by_one_route_go_through_every_phase() -> anyhow::Result<()> {
    const TABLES: usize = 2000;
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    let mut seed = String::from("CREATE DATABASE Many; USE Many;");
    for t in 0..TABLES {
        seed.push_str(&format!(
            "CREATE TABLE T_{t:04} (id INT PRIMARY KEY, v INT); INSERT INTO T_{t:04} VALUES (1, {t}), (2, {t});"
        ));
    }
    let started = std::time::Instant::now();
    source.exec(&seed).await?;
    println!("seeded at {:?}", started.elapsed());
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let spec = format!(
        "name_case = \"lower\"\n{}",
        sync_task(
            "many",
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            "[[routes]]\ndatabase = \"Many\"\nto_database = \"Many_Copy\"",
            4,
        )
    );
    let task = cluster
        .run_task_until(&spec, "incremental", Duration::from_secs(600))
        .await?;
    println!("incremental at {:?}", started.elapsed());
    let tables = destination
        .query_value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'many_copy' AND TABLE_NAME LIKE 't\\_%'")
        .await?;
    assert_eq!(tables, Some(TABLES.to_string()));
    source
        .exec(
            "USE Many; INSERT INTO T_0000 VALUES (3, 3); UPDATE T_1999 SET v = -1; DELETE FROM T_1000 WHERE id = 1; \
             ALTER TABLE T_0500 ADD COLUMN w INT NULL; INSERT INTO T_0500 VALUES (3, 3, 3); \
             CREATE TABLE T_NEW (id INT PRIMARY KEY); INSERT INTO T_NEW VALUES (7)",
        )
        .await?;
    wait_caught_up(&source, &destination, 4, TIMEOUT).await?;
    println!("caught up at {:?}", started.elapsed());
    assert_healthy(&cluster, &task).await?;
    assert_routed(&source, &destination, &spec).await?;
    println!("compared at {:?}", started.elapsed());
    Ok(())
}
