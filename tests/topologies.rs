//! Topologies through real processes: a two-way pair written on both sides
//! converges and goes quiet (no change comes back: the loop marker), DDL
//! reaches the other side once, and the pair lives and dies as one; a
//! cascade relays what dts applied upstream.

use dts_proto::pb;
use dts_tests::converge::{wait_quiet, wait_task_past};
use dts_tests::fixtures::sync_task;
use dts_tests::{wait_for, MariaDb, TestCluster};
use mysql_async::prelude::Queryable;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The table every two-way test writes, seeded with 1,000 rows.
const ITEMS: &str = "CREATE DATABASE shop; USE shop; \
    CREATE TABLE shop.items (id BIGINT PRIMARY KEY, side VARCHAR(8), n INT NOT NULL); \
    INSERT INTO shop.items SELECT seq, 'seed', 0 FROM seq_1_to_1000";

/// `rounds` transactions on `server`, each inserting a row of its own key
/// range, updating one of the seeded rows that are its own (side `side` of
/// `sides`: ids congruent to `side` modulo `sides`) and deleting one it
/// inserted. Sides never touch each other's rows.
async fn write_side(
    server: &MariaDb,
    base: u64,
    (side, sides): (u64, u64),
    rounds: u64,
) -> anyhow::Result<()> {
    let mut conn = server.conn().await?;
    for n in 0..rounds {
        let mut tx = conn.start_transaction(Default::default()).await?;
        tx.exec_drop(
            "INSERT INTO shop.items (id, side, n) VALUES (?, ?, ?)",
            (base + n, side, n),
        )
        .await?;
        tx.exec_drop(
            "UPDATE shop.items SET n = n + 1 WHERE id = ?",
            ((n * sides + side) % (sides * 300) + 1,),
        )
        .await?;
        if n % 5 == 4 {
            tx.exec_drop("DELETE FROM shop.items WHERE id = ?", (base + n - 2,))
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

fn two_way_spec(a: &MariaDb, b: &MariaDb) -> String {
    format!(
        "topology = \"two_way\"\n{}",
        sync_task(
            "pair",
            a.port,
            b.port,
            &["schema", "full", "incremental"],
            "[[objects]]\ndatabase = \"shop\"",
            2,
        )
    )
}

#[tokio::test]
async fn a_two_way_pair_written_on_both_sides_converges_goes_quiet_and_lives_as_one(
) -> anyhow::Result<()> {
    let a = MariaDb::start(1).await?;
    let b = MariaDb::start(2).await?;
    a.exec(&format!(
        "{ITEMS}; CREATE TABLE shop.log (id INT PRIMARY KEY); \
         INSERT INTO shop.log SELECT seq FROM seq_1_to_10"
    ))
    .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let created = cluster.create_task(&two_way_spec(&a, &b), true).await?;
    let forward = created.id.clone();
    let reverse = created.linked_task_id.clone();
    assert_eq!(created.link_role, "forward");
    anyhow::ensure!(!reverse.is_empty(), "no reverse task: {created:?}");
    let reverse_info = cluster.task(&reverse).await?;
    assert_eq!(reverse_info.link_role, "reverse");
    assert_eq!(reverse_info.linked_task_id, forward);
    cluster
        .wait_for_task_phase(&forward, "incremental", TIMEOUT)
        .await?;
    cluster
        .wait_for_task_phase(&reverse, "incremental", TIMEOUT)
        .await?;

    // Both sides written at once, each in keys of its own, while the forward
    // task verifies the pair: rows on their way back are no differences.
    let asked = cluster.dtsctl(&["task", "verify", &forward, "--run"])?;
    anyhow::ensure!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    let (on_a, on_b) = tokio::join!(
        write_side(&a, 100_000, (0, 2), 300),
        write_side(&b, 200_000, (1, 2), 300)
    );
    on_a?;
    on_b?;
    wait_quiet(&cluster, &[(&forward, &a), (&reverse, &b)]).await?;
    let verified = wait_for("the pair's verification pass", TIMEOUT, || async {
        let progress = cluster.progress(&forward).await?;
        let verify = progress["verify"].clone();
        Ok((verify["pass"] == 1 && verify["status"] == "done").then_some(verify))
    })
    .await?;
    assert_eq!(verified["differences"], 0, "{verified}");
    assert_eq!(verified["tables_done"], 2, "{verified}");
    let refused = cluster.dtsctl(&["task", "verify", &reverse, "--run"])?;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("verify its forward task"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let (sa, sb) = (
        a.checksum("shop", "items").await?,
        b.checksum("shop", "items").await?,
    );
    assert_eq!(sa, sb, "the sides differ");
    // 1000 seeded + 300 a side, less 60 deleted a side.
    assert_eq!(sa.0, 1000 + 2 * (300 - 60));

    // DDL on A reaches B once and does not come back; TRUNCATE, CREATE OR
    // REPLACE VIEW and ALTER ... ENGINE, which succeed when repeated, do not
    // bounce either.
    a.exec(
        "ALTER TABLE shop.items ADD COLUMN note VARCHAR(20) NULL; TRUNCATE TABLE shop.log; \
         CREATE OR REPLACE VIEW shop.recent AS SELECT id FROM shop.items WHERE id > 900; \
         ALTER TABLE shop.log ENGINE = InnoDB",
    )
    .await?;
    a.exec("INSERT INTO shop.items VALUES (300000, 'a', 1, 'after ddl')")
        .await?;
    // Once B has the TRUNCATE (else the two would race: a conflict, not a loop).
    wait_task_past(&cluster, &forward, &a).await?;
    b.exec("INSERT INTO shop.log VALUES (77)").await?;
    wait_quiet(&cluster, &[(&forward, &a), (&reverse, &b)]).await?;
    let note = b
        .query_value("SELECT note FROM shop.items WHERE id = 300000")
        .await?;
    assert_eq!(note.as_deref(), Some("after ddl"));
    let view = b
        .query_value(
            "SELECT COUNT(*) FROM information_schema.VIEWS \
             WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'recent'",
        )
        .await?;
    assert_eq!(view.as_deref(), Some("1"), "the view did not reach B");
    for table in ["items", "log"] {
        let (x, y) = (
            a.checksum("shop", table).await?,
            b.checksum("shop", table).await?,
        );
        assert_eq!(x, y, "shop.{table} differs");
    }
    let log = a
        .query_value("SELECT GROUP_CONCAT(id) FROM shop.log")
        .await?;
    assert_eq!(
        log.as_deref(),
        Some("77"),
        "the TRUNCATE came back after B's insert"
    );
    let skipped = cluster.task(&reverse).await?;
    let progress = skipped.checkpoint.map(|c| c.position).unwrap_or_default();
    assert!(
        progress.contains("two-way: DDL flows along the forward task only"),
        "the reverse task does not list the DDL it skipped: {progress}"
    );

    // One pause pauses both; one delete deletes both.
    cluster
        .control_task(&reverse, pb::TaskAction::Pause)
        .await?;
    assert_eq!(cluster.task(&forward).await?.desired, "paused");
    cluster
        .control_task(&forward, pb::TaskAction::Resume)
        .await?;
    assert_eq!(cluster.task(&reverse).await?.desired, "running");
    let out = cluster.dtsctl(&["task", "delete", &forward])?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = cluster.tasks().await?;
    assert!(
        left.is_empty(),
        "tasks left after deleting the pair: {left:?}"
    );
    Ok(())
}

/// Both sides of a pair change the same rows while the pair is paused; on
/// resuming, each side's task meets the other's changes as conflicts. With
/// `keep_greater` on a version column both sides keep the same row, whichever
/// side each change came from (an insert met by an insert, an update by an
/// update, a delete by an update); with `ignore` each keeps its own. Each
/// task counts what it settled, and the pair goes quiet.
#[tokio::test]
async fn a_two_way_pair_settles_concurrent_writes_the_same_way_on_both_sides() -> anyhow::Result<()>
{
    let a = MariaDb::start(1).await?;
    let b = MariaDb::start(2).await?;
    a.exec(
        "CREATE DATABASE shop; USE shop; \
         CREATE TABLE docs (id INT PRIMARY KEY, body VARCHAR(20), version INT NOT NULL); \
         INSERT INTO docs SELECT seq, 'seed', 1 FROM seq_1_to_10; \
         CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(20)); \
         INSERT INTO notes SELECT seq, 'seed' FROM seq_1_to_3",
    )
    .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let spec = format!(
        "{}\n[conflicts]\npolicy = \"ignore\"\n\
         [[conflicts.tables]]\ndatabase = \"shop\"\ntable = \"docs\"\npolicy = \"keep_greater\"\ncolumn = \"version\"",
        two_way_spec(&a, &b)
    );
    let created = cluster.create_task(&spec, true).await?;
    let (forward, reverse) = (created.id, created.linked_task_id);
    for task in [&forward, &reverse] {
        cluster
            .wait_for_task_phase(task, "incremental", TIMEOUT)
            .await?;
    }
    cluster
        .control_task(&forward, pb::TaskAction::Pause)
        .await?;
    wait_for("the workers to stop the pair", TIMEOUT, || async {
        let status = cluster.cluster_status().await?;
        Ok(status.workers.iter().all(|w| w.du_used == 0).then_some(()))
    })
    .await?;
    a.exec(
        "USE shop; UPDATE docs SET body = 'a', version = 5 WHERE id = 1; \
         UPDATE docs SET body = 'a', version = 9 WHERE id = 2; \
         INSERT INTO docs VALUES (100, 'a', 1); DELETE FROM docs WHERE id = 4; \
         UPDATE docs SET body = 'a only' WHERE id = 5; UPDATE notes SET body = 'a' WHERE id = 1",
    )
    .await?;
    b.exec(
        "USE shop; UPDATE docs SET body = 'b', version = 7 WHERE id = 1; \
         UPDATE docs SET body = 'b', version = 3 WHERE id = 2; \
         INSERT INTO docs VALUES (100, 'b', 2); UPDATE docs SET body = 'b', version = 8 WHERE id = 4; \
         UPDATE docs SET body = 'b only' WHERE id = 6; UPDATE notes SET body = 'b' WHERE id = 1",
    )
    .await?;
    cluster
        .control_task(&forward, pb::TaskAction::Resume)
        .await?;
    wait_quiet(&cluster, &[(&forward, &a), (&reverse, &b)]).await?;

    let docs = "SELECT GROUP_CONCAT(CONCAT(id, ':', body, ':', version) ORDER BY id) \
                FROM shop.docs WHERE id IN (1, 2, 4, 5, 6, 100)";
    let expected = "1:b:7,2:a:9,4:b:8,5:a only:1,6:b only:1,100:b:2";
    assert_eq!(
        a.query_value(docs).await?.as_deref(),
        Some(expected),
        "on A"
    );
    assert_eq!(
        b.query_value(docs).await?.as_deref(),
        Some(expected),
        "on B"
    );
    assert_eq!(
        a.checksum("shop", "docs").await?,
        b.checksum("shop", "docs").await?
    );
    let note = "SELECT body FROM shop.notes WHERE id = 1";
    assert_eq!(a.query_value(note).await?.as_deref(), Some("a"));
    assert_eq!(b.query_value(note).await?.as_deref(), Some("b"));

    let counts = |task: String| {
        let cluster = &cluster;
        async move {
            let progress = cluster.progress(&task).await?;
            anyhow::Ok(progress["conflicts"]["counts"].clone())
        }
    };
    // Applying A's changes on B: B's rows win where their version is greater.
    assert_eq!(
        counts(forward.clone()).await?,
        serde_json::json!({
            "delete_differs": { "kept": 1 },
            "insert_exists": { "kept": 1 },
            "update_differs": { "applied": 1, "kept": 2 },
        })
    );
    assert_eq!(
        counts(reverse.clone()).await?,
        serde_json::json!({
            "insert_exists": { "applied": 1 },
            "update_differs": { "applied": 1, "kept": 2 },
            "update_missing": { "applied": 1 },
        })
    );
    Ok(())
}

/// The reverse task reads the destination's binlog, but starts only after
/// the forward task's full copy: a binlog it cannot read is refused by the
/// forward task's prechecks, before anything is copied.
#[tokio::test]
async fn a_pair_whose_destination_binlog_the_reverse_cannot_read_is_refused_at_once(
) -> anyhow::Result<()> {
    let a = MariaDb::start(1).await?;
    let b = MariaDb::start(2).await?;
    a.exec(ITEMS).await?;
    b.exec("SET GLOBAL binlog_row_image = 'MINIMAL'").await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let created = cluster.create_task(&two_way_spec(&a, &b), true).await?;
    let failed = cluster
        .wait_for_task_status(&created.id, "failed", TIMEOUT)
        .await?;
    assert!(
        failed.last_error.contains(
            "destination: the reverse task of this two-way pair reads this server's binlog, \
             and its binlog_row_image is MINIMAL"
        ),
        "{}",
        failed.last_error
    );
    assert_eq!(b.query_value("SHOW DATABASES LIKE 'shop'").await?, None);
    Ok(())
}

/// A -> B -> C as two one-way tasks: B's task relays what A's task applied
/// on B (its marker names A as the origin, and C is neither A nor B), DDL
/// included; A -> D beside it.
#[tokio::test]
async fn a_cascade_and_a_fan_out_relay_rows_and_ddl_with_the_marker_in_place() -> anyhow::Result<()>
{
    let a = MariaDb::start(1).await?;
    let b = MariaDb::start(2).await?;
    let c = MariaDb::start(3).await?;
    let d = MariaDb::start(4).await?;
    a.exec(
        "CREATE DATABASE shop; USE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, n INT); \
         INSERT INTO shop.items SELECT seq, 0 FROM seq_1_to_100",
    )
    .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let objects = "[[objects]]\ndatabase = \"shop\"";
    let modes = ["schema", "full", "incremental"];
    let first = cluster
        .run_task_until(
            &sync_task("a-b", a.port, b.port, &modes, objects, 1),
            "incremental",
            TIMEOUT,
        )
        .await?;
    let second = cluster
        .run_task_until(
            &sync_task("b-c", b.port, c.port, &modes, objects, 1),
            "incremental",
            TIMEOUT,
        )
        .await?;
    // And one to many: A feeds D as well.
    let fan = cluster
        .run_task_until(
            &sync_task("a-d", a.port, d.port, &modes, objects, 1),
            "incremental",
            TIMEOUT,
        )
        .await?;
    a.exec(
        "UPDATE shop.items SET n = n + 1 WHERE id <= 50; INSERT INTO shop.items VALUES (101, 1); \
         ALTER TABLE shop.items ADD COLUMN note VARCHAR(10) NULL; \
         INSERT INTO shop.items VALUES (102, 2, 'after')",
    )
    .await?;
    wait_task_past(&cluster, &first, &a).await?;
    wait_task_past(&cluster, &second, &b).await?;
    wait_task_past(&cluster, &fan, &a).await?;
    let x = a.checksum("shop", "items").await?;
    assert_eq!(x, c.checksum("shop", "items").await?, "C differs from A");
    assert_eq!(x, d.checksum("shop", "items").await?, "D differs from A");
    let note = "SELECT note FROM shop.items WHERE id = 102";
    assert_eq!(c.query_value(note).await?.as_deref(), Some("after"));
    Ok(())
}

/// A star: hub H and leaves L1, L2, each leaf two-way with the hub (the
/// forward tasks copy the hub to the leaves). Writes at every node, each in
/// keys of its own: all three end equal, and quiet.
#[tokio::test]
async fn a_star_of_two_way_pairs_converges_with_writes_at_every_node() -> anyhow::Result<()> {
    let hub = MariaDb::start(10).await?;
    let leaf_1 = MariaDb::start(1).await?;
    let leaf_2 = MariaDb::start(2).await?;
    hub.exec(ITEMS).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .worker(4)
        .start()
        .await?;
    let mut pairs = Vec::new();
    for leaf in [&leaf_1, &leaf_2] {
        let forward = cluster.create_task(&two_way_spec(&hub, leaf), true).await?;
        pairs.push((forward.id, forward.linked_task_id));
    }
    for (forward, reverse) in &pairs {
        cluster
            .wait_for_task_phase(forward, "incremental", TIMEOUT)
            .await?;
        cluster
            .wait_for_task_phase(reverse, "incremental", TIMEOUT)
            .await?;
    }
    let (h, l1, l2) = tokio::join!(
        write_side(&hub, 100_000, (0, 3), 150),
        write_side(&leaf_1, 200_000, (1, 3), 150),
        write_side(&leaf_2, 300_000, (2, 3), 150)
    );
    h?;
    l1?;
    l2?;
    let (forward_1, reverse_1) = (pairs[0].0.as_str(), pairs[0].1.as_str());
    let (forward_2, reverse_2) = (pairs[1].0.as_str(), pairs[1].1.as_str());
    wait_quiet(
        &cluster,
        &[
            (forward_1, &hub),
            (reverse_1, &leaf_1),
            (forward_2, &hub),
            (reverse_2, &leaf_2),
        ],
    )
    .await?;
    let expected = hub.checksum("shop", "items").await?;
    // 1000 seeded + 150 a node, less 30 deleted a node.
    assert_eq!(expected.0, 1000 + 3 * (150 - 30));
    for leaf in [&leaf_1, &leaf_2] {
        assert_eq!(leaf.checksum("shop", "items").await?, expected);
    }
    Ok(())
}

/// The worker of each direction SIGKILLed in turn while both sides write:
/// the new owners resume from the destinations' checkpoints, nothing comes
/// back, nothing is lost or applied twice (each side bumps its own counters
/// once a transaction: their sums count the transactions).
#[tokio::test]
async fn workers_of_a_two_way_pair_sigkilled_mid_stream_lose_loop_and_repeat_nothing(
) -> anyhow::Result<()> {
    let a = MariaDb::start(1).await?;
    let b = MariaDb::start(2).await?;
    a.exec(&format!(
        "{ITEMS}; CREATE TABLE shop.counters (id INT PRIMARY KEY, n BIGINT NOT NULL); \
         INSERT INTO shop.counters SELECT seq, 0 FROM seq_1_to_10"
    ))
    .await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let created = cluster.create_task(&two_way_spec(&a, &b), true).await?;
    let (forward, reverse) = (created.id, created.linked_task_id);
    cluster
        .wait_for_task_phase(&forward, "incremental", TIMEOUT)
        .await?;
    cluster
        .wait_for_task_phase(&reverse, "incremental", TIMEOUT)
        .await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = |server: &MariaDb, base: u64, parity: u64| {
        let url = server.url();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut conn = mysql_async::Conn::from_url(url).await?;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut tx = conn.start_transaction(Default::default()).await?;
                tx.exec_drop(
                    "INSERT INTO shop.items (id, side, n) VALUES (?, 'w', ?)",
                    (base + n, n),
                )
                .await?;
                tx.exec_drop(
                    "UPDATE shop.items SET n = n + 1 WHERE id = ?",
                    ((n * 2 + parity) % 1000 + 1,),
                )
                .await?;
                tx.exec_drop(
                    "UPDATE shop.counters SET n = n + 1 WHERE id = ?",
                    (n % 5 + 1 + parity * 5,),
                )
                .await?;
                tx.commit().await?;
                n += 1;
            }
            anyhow::Ok(n)
        })
    };
    let on_a = writer(&a, 100_000, 0);
    let on_b = writer(&b, 200_000, 1);
    for task in [&reverse, &forward] {
        // Let the pair carry some of the load first.
        let before = b.binlog_end().await?;
        wait_for("writes to go by", TIMEOUT, || async {
            Ok((b.binlog_end().await? > before).then_some(()))
        })
        .await?;
        wait_task_past(&cluster, &reverse, &b).await?;
        let owner = cluster.task(task).await?.worker_id;
        cluster.worker(&owner)?.process.kill();
        cluster.add_worker(2)?;
        cluster.wait_for_task_moved(task, &owner, TIMEOUT).await?;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (written_a, written_b) = (on_a.await??, on_b.await??);
    wait_quiet(&cluster, &[(&forward, &a), (&reverse, &b)]).await?;
    for table in ["items", "counters"] {
        let (x, y) = (
            a.checksum("shop", table).await?,
            b.checksum("shop", table).await?,
        );
        assert_eq!(x, y, "shop.{table} differs");
    }
    let sums = a
        .query_value(
            "SELECT CONCAT(SUM(IF(id <= 5, n, 0)), ' ', SUM(IF(id > 5, n, 0))) FROM shop.counters",
        )
        .await?;
    assert_eq!(sums, Some(format!("{written_a} {written_b}")));
    println!("{written_a} transactions on A, {written_b} on B");
    Ok(())
}

/// Makes `replica` replicate everything `primary` logs from now on.
async fn replicate(replica: &MariaDb, primary: &MariaDb) -> anyhow::Result<()> {
    let (file, pos) = primary.binlog_end().await?;
    replica
        .exec(&format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
             MASTER_LOG_FILE = '{file}', MASTER_LOG_POS = {pos}; START SLAVE",
            primary.port
        ))
        .await
}

/// A source that is a replica without log_slave_updates would hide what it
/// replicates from dts: refused. With it, what reaches the replica from its
/// primary reaches the destination.
#[tokio::test]
async fn a_replica_source_needs_log_slave_updates_and_with_it_relays_its_primary(
) -> anyhow::Result<()> {
    let primary = MariaDb::start(1).await?;
    let plain = MariaDb::start(2).await?;
    let logging = MariaDb::start_with(3, &["--log-slave-updates"]).await?;
    let destination = MariaDb::start(4).await?;
    replicate(&plain, &primary).await?;
    replicate(&logging, &primary).await?;
    primary
        .exec("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, n INT)")
        .await?;
    for replica in [&plain, &logging] {
        wait_for("the replica to have shop.items", TIMEOUT, || async {
            let found = replica
                .query_value(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'",
                )
                .await?;
            Ok((found.as_deref() == Some("1")).then_some(()))
        })
        .await?;
    }
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let objects = "[[objects]]\ndatabase = \"shop\"";
    let modes = ["schema", "full", "incremental"];
    let refused = cluster
        .create_task(
            &sync_task("plain", plain.port, destination.port, &modes, objects, 1),
            true,
        )
        .await?
        .id;
    let failed = cluster
        .wait_for_task_status(&refused, "failed", TIMEOUT)
        .await?;
    assert!(
        failed
            .last_error
            .contains("is a replica (of 127.0.0.1) with log_slave_updates = OFF"),
        "{}",
        failed.last_error
    );
    let out = cluster.dtsctl(&["task", "delete", &refused])?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = cluster
        .run_task_until(
            &sync_task(
                "logging",
                logging.port,
                destination.port,
                &modes,
                objects,
                1,
            ),
            "incremental",
            TIMEOUT,
        )
        .await?;
    primary
        .exec("INSERT INTO shop.items VALUES (1, 1), (2, 2); UPDATE shop.items SET n = 20 WHERE id = 2")
        .await?;
    wait_for(
        "the primary's rows to reach the destination",
        TIMEOUT,
        || async {
            let rows = destination
                .query_value("SELECT GROUP_CONCAT(CONCAT(id, ':', n) ORDER BY id) FROM shop.items")
                .await
                .ok()
                .flatten();
            Ok((rows.as_deref() == Some("1:1,2:20")).then_some(()))
        },
    )
    .await?;
    let info = cluster.task(&task).await?;
    assert!(info.last_error.is_empty(), "{}", info.last_error);
    Ok(())
}
