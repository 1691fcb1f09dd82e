//! Online schema change tools on a selected, renamed table while it is
//! written: pt-online-schema-change run for real (Debian's percona-toolkit)
//! under sysbench, and gh-ost's statement and row sequence reproduced
//! (gh-ost is not packaged): its changelog table, the ghost table created LIKE the table and
//! altered, the row copy, the binlog changes applied to the ghost, the
//! cut-over sentry and the atomic RENAME. Each in both modes: the destination
//! never holds a tool's table and takes the ALTER at the cut-over (follow),
//! or holds them and drops them as the source does (copy); either way it ends
//! with the new definition and the source's rows.

use dts_tests::bench::tools::Sysbench;
use dts_tests::converge::{assert_healthy, wait_caught_up};
use dts_tests::fixtures::sync_task;
use dts_tests::{wait_for, MariaDb, TestCluster};
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

const SCHEMA: &str = "CREATE DATABASE shop; USE shop; \
    CREATE TABLE orders (id INT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(10,2) NOT NULL); \
    CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); \
    INSERT INTO orders SELECT seq, seq % 97, seq / 10 FROM seq_1_to_20000; \
    INSERT INTO notes VALUES (1, 'not selected')";

/// A selected source table and its destination: the one selected table of
/// its database, renamed with it.
struct Selected {
    db: &'static str,
    table: &'static str,
    to_db: &'static str,
    to_table: &'static str,
}

impl Selected {
    fn objects(&self) -> String {
        format!(
            "[[objects]]\ndatabase = \"{}\"\nto = \"{}\"\ntables = [{{ name = \"{}\", to = \"{}\" }}]",
            self.db, self.to_db, self.table, self.to_table
        )
    }
}

/// gh-ost's table (the test's own writer writes it).
const ORDERS: Selected = Selected {
    db: "shop",
    table: "orders",
    to_db: "eu",
    to_table: "orders_eu",
};

/// pt-osc's table (sysbench writes it).
const SBTEST: Selected = Selected {
    db: "sbtest",
    table: "sbtest1",
    to_db: "eu",
    to_table: "sbtest_eu",
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Follow,
    Copy,
    Fail,
}

impl Mode {
    fn spec_line(self) -> &'static str {
        match self {
            Mode::Follow => "online_ddl = \"follow_original_ddl\"",
            Mode::Copy => "online_ddl = \"copy_shadow_tables\"",
            Mode::Fail => "online_ddl = \"fail\"",
        }
    }
}

fn task_spec(source: &MariaDb, destination: &MariaDb, mode: Mode, selected: &Selected) -> String {
    // Top-level keys go before the task file's first section.
    format!(
        "{}\n{}",
        mode.spec_line(),
        sync_task(
            "online-ddl",
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            &selected.objects(),
            2,
        )
    )
}

/// Writes `shop.orders` in transactions until stopped: inserts, updates
/// and deletes; with `ghost` set, each change is then applied to
/// `shop._orders_gho` in a transaction of its own, as gh-ost applies what it
/// reads from the binlog.
struct Writer {
    stop: Arc<AtomicBool>,
    ghost: Arc<AtomicBool>,
    /// Held by the writer for each change and its copy to the ghost table;
    /// taken by a test to hold the writer between changes.
    turn: Arc<tokio::sync::Mutex<()>>,
    committed: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Writer {
    async fn start(source: &MariaDb) -> anyhow::Result<Self> {
        let mut conn = source.conn().await?;
        let stop = Arc::new(AtomicBool::new(false));
        let ghost = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        let (s, g, c, t) = (stop.clone(), ghost.clone(), committed.clone(), turn.clone());
        let handle = tokio::spawn(async move {
            let mut n: u64 = 100_000;
            while !s.load(Ordering::Relaxed) {
                let _turn = t.lock().await;
                n += 1;
                let (updated, deleted) = (n % 19_000 + 1, (n * 7) % 19_000 + 1);
                // The tool's locking reads can make a change a deadlock
                // victim: the transaction is rolled back, and an
                // application tries it again.
                let mut tries = 0;
                loop {
                    tries += 1;
                    match change(&mut conn, n, updated, deleted).await {
                        Err(mysql_async::Error::Server(e))
                            if [1213, 1205].contains(&e.code) && tries < 300 =>
                        {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                        other => other?,
                    }
                    break;
                }
                if g.load(Ordering::Relaxed) {
                    for id in [n, updated] {
                        conn.exec_drop(
                            "replace /* gh-ost */ into `shop`.`_orders_gho` (`id`, `customer`, `amount`) \
                             select `id`, `customer`, `amount` from `shop`.`orders` where `id` = ?",
                            (id,),
                        )
                        .await?;
                    }
                    conn.exec_drop(
                        "delete /* gh-ost */ from `shop`.`_orders_gho` where `id` = ?",
                        (deleted,),
                    )
                    .await?;
                }
                c.fetch_add(1, Ordering::Relaxed);
            }
            conn.disconnect().await?;
            Ok(())
        });
        Ok(Self {
            stop,
            ghost,
            turn,
            committed,
            handle,
        })
    }

    async fn wait_for_more(&self, more: u64) -> anyhow::Result<()> {
        let target = self.committed.load(Ordering::Relaxed) + more;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while self.committed.load(Ordering::Relaxed) < target {
            anyhow::ensure!(!self.handle.is_finished(), "the writer stopped");
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the writer did not commit {more} more in {TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await??;
        Ok(self.committed.load(Ordering::Relaxed))
    }
}

/// One change of the writer, in a transaction.
async fn change(
    conn: &mut mysql_async::Conn,
    n: u64,
    updated: u64,
    deleted: u64,
) -> Result<(), mysql_async::Error> {
    let mut tx = conn.start_transaction(Default::default()).await?;
    tx.exec_drop(
        "INSERT INTO shop.orders (id, customer, amount) VALUES (?, ?, ?)",
        (n, n % 97, n % 1000),
    )
    .await?;
    tx.exec_drop(
        "UPDATE shop.orders SET amount = amount + 1 WHERE id = ?",
        (updated,),
    )
    .await?;
    tx.exec_drop("DELETE FROM shop.orders WHERE id = ?", (deleted,))
        .await?;
    tx.commit().await
}

/// The destination ended as the source: the table's rows and columns (with
/// the added `note`), `index`, no tool's table left, nothing kept for a
/// cut-over.
async fn assert_ended_altered(
    source: &MariaDb,
    destination: &MariaDb,
    selected: &Selected,
    index: Option<&str>,
) -> anyhow::Result<()> {
    let (a, b) = (
        source.checksum(selected.db, selected.table).await?,
        destination
            .checksum(selected.to_db, selected.to_table)
            .await?,
    );
    anyhow::ensure!(a == b, "source {a:?}, destination {b:?}");
    let columns = |db: &str, table: &str| {
        format!(
            "SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE) ORDER BY ORDINAL_POSITION) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}'"
        )
    };
    let (a, b) = (
        source
            .query_value(&columns(selected.db, selected.table))
            .await?,
        destination
            .query_value(&columns(selected.to_db, selected.to_table))
            .await?,
    );
    assert_eq!(a, b, "columns");
    assert!(
        b.as_deref().is_some_and(|c| c.contains("note varchar(20)")),
        "{b:?}"
    );
    if let Some(index) = index {
        let has = destination
            .query_value(&format!(
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{}' \
                 AND TABLE_NAME = '{}' AND INDEX_NAME = '{index}'",
                selected.to_db, selected.to_table
            ))
            .await?;
        assert_eq!(has.as_deref(), Some("1"), "index {index}");
    }
    let tables = destination
        .query_value(&format!(
            "SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA IN ('{}', '{}')",
            selected.to_db, selected.db
        ))
        .await?;
    assert_eq!(tables.as_deref(), Some(selected.to_table));
    let kept = destination
        .query_value("SELECT COUNT(*) FROM dts_meta.online_ddl")
        .await?;
    assert_eq!(
        kept.as_deref(),
        Some("0"),
        "changes kept after the cut-over"
    );
    Ok(())
}

/// Whether a statement or table map in the destination's binlog ever named
/// one of `tables` (not the annotations of row events: the meta schema's
/// rows name tools' tables; nor the schema history's dts_shadow_ databases).
async fn destination_held(destination: &MariaDb, tables: &[&str]) -> anyhow::Result<bool> {
    let events = destination.binlog_events().await?;
    Ok(events
        .iter()
        .filter(|e| e.starts_with("Query: ") || e.starts_with("Table_map: "))
        .filter(|e| !e.contains("dts_shadow_"))
        .any(|e| tables.iter().any(|t| e.contains(t))))
}

fn pt_online_schema_change(source: &MariaDb, alter: &str) -> anyhow::Result<()> {
    let dsn = format!(
        "h=127.0.0.1,P={},u=root,D={},t={}",
        source.port, SBTEST.db, SBTEST.table
    );
    let output = std::process::Command::new("pt-online-schema-change")
        .args([
            "--alter",
            alter,
            "--execute",
            "--noversion-check",
            "--chunk-size",
            "2000",
            "--recursion-method",
            "none",
            &dsn,
        ])
        .output()
        .map_err(|e| anyhow::anyhow!("run pt-online-schema-change (percona-toolkit): {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "pt-online-schema-change failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

async fn wait_for_writes(server: &MariaDb) -> anyhow::Result<()> {
    let from = server.binlog_end().await?;
    wait_for("sysbench to write", TIMEOUT, || async {
        Ok((server.binlog_end().await? > from).then_some(()))
    })
    .await
}

/// Two pt-online-schema-change runs (a column, an index) on a selected
/// table while sysbench writes it.
async fn pt_online_schema_change_under_sysbench(mode: Mode) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec("CREATE DATABASE sbtest; CREATE TABLE sbtest.unselected (id INT PRIMARY KEY)")
        .await?;
    let sysbench = Sysbench {
        port: source.port,
        db: SBTEST.db.into(),
        tables: 1,
        table_size: 20_000,
        rand_type: "uniform".to_string(),
    };
    sysbench.prepare(1)?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = task_spec(&source, &destination, mode, &SBTEST);
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    let mut load = sysbench.spawn_until_killed(2, 200)?;
    let changed = async {
        wait_for_writes(&source).await?;
        for alter in ["ADD COLUMN note VARCHAR(20) NULL", "ADD INDEX by_c (c)"] {
            let source_ref = &source;
            tokio::task::block_in_place(|| pt_online_schema_change(source_ref, alter))?;
            wait_for_writes(&source).await?;
        }
        anyhow::Ok(())
    }
    .await;
    let sysbench_ran = load.try_wait()?.is_none();
    load.kill()?;
    let output = load.wait_with_output()?;
    changed?;
    anyhow::ensure!(
        sysbench_ran,
        "sysbench stopped: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    source
        .exec("INSERT INTO sbtest.sbtest1 (id, k, c, pad, note) VALUES (1000000, 1, 'c', 'pad', 'after')")
        .await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs()))?;
    assert_healthy(&cluster, &task).await?;
    assert_ended_altered(&source, &destination, &SBTEST, Some("by_c")).await?;
    let held = destination_held(&destination, &["_sbtest1_new", "_sbtest1_old"]).await?;
    assert_eq!(
        held,
        mode == Mode::Copy,
        "the destination held pt-osc's tables"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pt_online_schema_change_is_followed_by_its_alter_without_its_tables() -> anyhow::Result<()>
{
    pt_online_schema_change_under_sysbench(Mode::Follow).await
}

#[tokio::test(flavor = "multi_thread")]
async fn pt_online_schema_change_tables_are_copied_and_dropped_with_copy_shadow_tables(
) -> anyhow::Result<()> {
    pt_online_schema_change_under_sysbench(Mode::Copy).await
}

/// gh-ost's changelog write: its state and heartbeat rows.
async fn ghost_changelog(source: &MariaDb, hint: &str, value: &str) -> anyhow::Result<()> {
    let mut conn = source.conn().await?;
    conn.exec_drop(
        "insert /* gh-ost */ into `shop`.`_orders_ghc` (`id`, `hint`, `value`) values (NULLIF(?, 0), ?, ?) \
         on duplicate key update last_update = NOW(), value = VALUES(value)",
        (if hint == "heartbeat" { 1 } else { 2 }, hint, value),
    )
    .await?;
    Ok(())
}

/// gh-ost's migration of `shop.orders` (`ALTER ... ADD COLUMN note`), as it
/// writes it, with `writer` writing the table throughout; `between` runs
/// after the ALTER of the ghost table, before the row copy.
async fn ghost_migration<F, Fut>(
    source: &MariaDb,
    writer: &Writer,
    between: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    source
        .exec(
            "drop /* gh-ost */ table if exists `shop`.`_orders_ghc`; \
             drop /* gh-ost */ table if exists `shop`.`_orders_gho`; \
             create /* gh-ost */ table `shop`.`_orders_ghc` (id bigint unsigned auto_increment, \
               last_update timestamp not null DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, \
               hint varchar(64) charset ascii not null, value varchar(4096) charset ascii not null, \
               primary key(id), unique key hint_uidx(hint)) auto_increment=256 comment='gh-ost changelog'; \
             create /* gh-ost */ table `shop`.`_orders_gho` like `shop`.`orders`; \
             alter /* gh-ost */ table `shop`.`_orders_gho` add column note varchar(20) null",
        )
        .await?;
    ghost_changelog(source, "state", "GhostTableMigrated").await?;
    between().await?;
    // From here gh-ost applies the table's binlog to the ghost table...
    writer.ghost.store(true, Ordering::Relaxed);
    // ...while it copies the rows, in ranges of the primary key.
    let mut conn = source.conn().await?;
    for start in (0..20_000u32).step_by(2_500) {
        conn.exec_drop(
            "insert /* gh-ost `shop`.`orders` */ ignore into `shop`.`_orders_gho` (`id`, `customer`, `amount`) \
             (select `id`, `customer`, `amount` from `shop`.`orders` force index (`PRIMARY`) \
             where ((`id` > ?) and (`id` <= ?)) lock in share mode)",
            (start, start + 2_500),
        )
        .await?;
        ghost_changelog(source, "heartbeat", "2026-12-03 15:00:00").await?;
    }
    // Rows the writer added beyond the copied range reach the ghost table
    // through the applied binlog, as rows inserted after gh-ost read the
    // range's end do.
    conn.exec_drop(
        "insert /* gh-ost `shop`.`orders` */ ignore into `shop`.`_orders_gho` (`id`, `customer`, `amount`) \
         (select `id`, `customer`, `amount` from `shop`.`orders` where `id` > 20000 lock in share mode)",
        (),
    )
    .await?;
    writer.wait_for_more(100).await?;
    // The cut-over, with the writer held between changes (gh-ost's lock
    // would block it, and every change it made is on the ghost table): the
    // sentry table, dropped while the tables are locked, lets the blocked
    // RENAME through.
    let held = writer.turn.lock().await;
    writer.ghost.store(false, Ordering::Relaxed);
    ghost_changelog(source, "state", "AllEventsUpToLockProcessed").await?;
    source
        .exec(
            "create /* gh-ost */ table `shop`.`_orders_del` (id int auto_increment primary key) \
             engine=InnoDB comment='ghost-cut-over-sentry'",
        )
        .await?;
    let mut locker = source.conn().await?;
    locker
        .query_drop("lock /* gh-ost */ tables `shop`.`orders` write, `shop`.`_orders_del` write")
        .await?;
    let renamer_url = source.url();
    let rename = tokio::spawn(async move {
        let mut conn = mysql_async::Conn::from_url(renamer_url).await?;
        conn.query_drop(
            "rename /* gh-ost */ table `shop`.`orders` to `shop`.`_orders_del`, \
             `shop`.`_orders_gho` to `shop`.`orders`",
        )
        .await?;
        anyhow::Ok(())
    });
    // The RENAME waits for the lock (gh-ost checks processlist for it).
    wait_for("the cut-over RENAME to wait for its lock", TIMEOUT, || async {
        let waiting = source
            .query_value(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'rename /* gh-ost */%'",
            )
            .await?;
        Ok((waiting.as_deref() == Some("1")).then_some(()))
    })
    .await?;
    locker
        .query_drop("drop /* gh-ost */ table if exists `shop`.`_orders_del`")
        .await?;
    locker.query_drop("unlock tables").await?;
    rename.await??;
    drop(held);
    source
        .exec(
            "drop /* gh-ost */ table if exists `shop`.`_orders_ghc`; \
             drop /* gh-ost */ table if exists `shop`.`_orders_del`",
        )
        .await?;
    Ok(())
}

/// The gh-ost sequence under writes; in follow mode, the worker holding the
/// task is SIGKILLed after it kept the ghost table's ALTER and before the
/// cut-over, so another worker applies it from what the first kept.
async fn gh_ost_sequence_under_writes(mode: Mode) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source.exec(SCHEMA).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let cluster = tokio::sync::Mutex::new(cluster);
    let spec = task_spec(&source, &destination, mode, &ORDERS);
    let task = cluster
        .lock()
        .await
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    let writer = Writer::start(&source).await?;
    writer.wait_for_more(50).await?;
    ghost_migration(&source, &writer, || async {
        if mode != Mode::Follow {
            return Ok(());
        }
        wait_for("the ghost table's ALTER kept", TIMEOUT, || async {
            let kept = destination
                .query_value("SELECT COUNT(*) FROM dts_meta.online_ddl")
                .await
                .ok()
                .flatten();
            Ok((kept.as_deref() == Some("1")).then_some(()))
        })
        .await?;
        let mut cluster = cluster.lock().await;
        let owner = cluster.task(&task).await?.worker_id;
        cluster.worker(&owner)?.process.kill();
        cluster.wait_for_task_moved(&task, &owner, TIMEOUT).await?;
        Ok(())
    })
    .await?;
    writer.wait_for_more(50).await?;
    let committed = writer.stop().await?;
    source
        .exec("INSERT INTO shop.orders VALUES (1000000, 1, 2.50, 'after the change')")
        .await?;
    let cluster = cluster.into_inner();
    wait_caught_up(&source, &destination, 2, TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs()))?;
    assert_healthy(&cluster, &task).await?;
    println!("{committed} transactions written during the change");
    assert_ended_altered(&source, &destination, &ORDERS, None).await?;
    let held =
        destination_held(&destination, &["_orders_gho", "_orders_ghc", "_orders_del"]).await?;
    assert_eq!(
        held,
        mode == Mode::Copy,
        "the destination held gh-ost's tables"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn gh_ost_sequence_is_followed_across_a_worker_kill_between_alter_and_cut_over(
) -> anyhow::Result<()> {
    gh_ost_sequence_under_writes(Mode::Follow).await
}

#[tokio::test(flavor = "multi_thread")]
async fn gh_ost_tables_are_copied_and_renamed_with_copy_shadow_tables() -> anyhow::Result<()> {
    gh_ost_sequence_under_writes(Mode::Copy).await
}

/// A task started while a tool's shadow table exists cannot see the ALTER
/// already run on it: refused, naming both tables. With `online_ddl =
/// "fail"`, a tool starting on a selected table fails the task before the
/// change, with the statement.
#[tokio::test]
async fn a_change_under_way_at_the_start_and_one_refused_by_fail_stop_the_task_with_the_reason(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(&format!(
            "{SCHEMA}; CREATE TABLE shop._orders_gho LIKE shop.orders; \
             ALTER TABLE shop._orders_gho ADD COLUMN note VARCHAR(20) NULL"
        ))
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let spec = task_spec(&source, &destination, Mode::Follow, &ORDERS);
    let task = cluster.create_task(&spec, true).await?.id;
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    assert!(
        failed.last_error.contains("`shop`.`_orders_gho` is an online schema change tool's shadow table of selected table `shop`.`orders`"),
        "{}",
        failed.last_error
    );
    let copied = destination
        .query_value("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'eu'")
        .await?;
    assert_eq!(copied.as_deref(), Some("0"), "refused before the schema");

    source.exec("DROP TABLE shop._orders_gho").await?;
    let spec = task_spec(&source, &destination, Mode::Fail, &ORDERS);
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    source
        .exec(
            "INSERT INTO shop.orders VALUES (900000, 1, 1); \
             CREATE TABLE shop._orders_gho LIKE shop.orders; \
             INSERT INTO shop.orders VALUES (900001, 1, 1)",
        )
        .await?;
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    assert!(
        failed.last_error.contains("starts an online schema change of selected table `shop`.`orders` (online_ddl = \"fail\")")
            && failed.last_error.contains("_orders_gho"),
        "{}",
        failed.last_error
    );
    // Everything before the tool's first statement arrived, nothing after.
    let arrived = destination
        .query_value("SELECT GROUP_CONCAT(id ORDER BY id) FROM eu.orders_eu WHERE id >= 900000")
        .await?;
    assert_eq!(arrived.as_deref(), Some("900000"));
    Ok(())
}
