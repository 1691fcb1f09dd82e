//! Schema and full data sync between real MariaDB servers through a real
//! cluster: every column type round-trips exactly, a worker killed mid-copy
//! loses only its in-flight chunks, and bad input fails with a precise message.

use dts_tests::compare::{assert_same_definition, assert_same_rows};
use dts_tests::converge::wait_caught_up;
use dts_tests::fixtures::{sync_task, EVERY_TYPE_SCHEMA};
use dts_tests::{wait_for, MariaDb, TestCluster};
use mysql_async::prelude::Queryable;
use std::time::Duration;

const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// A source with `big.rows` (400,000 rows, 81 chunks, a secondary index),
/// and an empty destination.
async fn servers_with_a_big_table() -> anyhow::Result<(MariaDb, MariaDb)> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE big; USE big; \
             CREATE TABLE big.rows (id INT PRIMARY KEY, pad VARCHAR(255), KEY by_pad (pad(20))); \
             INSERT INTO big.rows SELECT seq, REPEAT(CHAR(65 + seq % 26), 200) FROM seq_1_to_400000",
        )
        .await?;
    Ok((source, destination))
}

/// Schema and full sync of `big` on one DU.
fn big_table_task(source: &MariaDb, destination: &MariaDb) -> String {
    sync_task(
        "big",
        source.port,
        destination.port,
        &["schema", "full"],
        "[[objects]]\ndatabase = \"big\"",
        1,
    )
}

/// Pauses the task and waits until its worker stopped it (and its binlog
/// reader), which it does at its next beat.
async fn pause_until_stopped(cluster: &TestCluster, task: &str) -> anyhow::Result<()> {
    cluster
        .control_task(task, dts_proto::pb::TaskAction::Pause)
        .await?;
    wait_for(
        "the paused task to stop on its worker",
        Duration::from_secs(10),
        || async {
            let status = cluster.cluster_status().await?;
            Ok(status
                .workers
                .iter()
                .all(|w| !w.running_tasks.iter().any(|t| t == task))
                .then_some(()))
        },
    )
    .await
}

#[tokio::test]
async fn schema_and_full_sync_move_every_column_type_exactly() -> anyhow::Result<()> {
    let logs = every_type_full_sync(&["--default-time-zone=-03:00"]).await?;
    assert!(!logs.contains("refuses LOAD DATA LOCAL INFILE"), "{logs}");
    Ok(())
}

/// The same rows arrive through multi-row INSERT when the destination
/// refuses LOAD DATA LOCAL INFILE.
#[tokio::test]
async fn a_destination_without_local_infile_gets_every_column_type_by_insert() -> anyhow::Result<()>
{
    let logs = every_type_full_sync(&["--default-time-zone=-03:00", "--local-infile=0"]).await?;
    assert!(logs.contains("refuses LOAD DATA LOCAL INFILE"), "{logs}");
    Ok(())
}

/// Copies the every-type fixture onto a destination started with
/// `destination_options` and checks it; returns the cluster's logs.
async fn every_type_full_sync(destination_options: &[&str]) -> anyhow::Result<String> {
    // Servers in different time zones: TIMESTAMP values must not shift.
    let source = MariaDb::start_with(1, &["--default-time-zone=+05:00"]).await?;
    let destination = MariaDb::start_with(2, destination_options).await?;
    source.exec(EVERY_TYPE_SCHEMA).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let spec = sync_task(
        "types",
        source.port,
        destination.port,
        &["schema", "full"],
        "[[objects]]\ndatabase = \"typed\"",
        2,
    );
    let task = cluster.create_task(&spec, true).await?.id;
    let done = cluster
        .wait_for_task_phase(&task, "done", SYNC_TIMEOUT)
        .await?;
    assert!(done.last_error.is_empty(), "{}", done.last_error);

    assert_same_rows(
        &source,
        &destination,
        &[
            ("typed", "all_types"),
            ("typed", "parent"),
            ("typed", "child"),
        ],
    )
    .await?;
    // Values read back through the destination's own functions, not just checksums.
    let probes = [
        (
            "SELECT HEX(b64) FROM typed.all_types WHERE id = 1",
            "FFFFFFFFFFFFFFFF",
        ),
        (
            "SELECT tm FROM typed.all_types WHERE id = 1",
            "-838:59:59.000000",
        ),
        (
            "SELECT tm FROM typed.all_types WHERE id = 4",
            "100:00:00.500000",
        ),
        (
            "SELECT UNIX_TIMESTAMP(ts) FROM typed.all_types WHERE id = 2",
            "2147483647.999999",
        ),
        (
            "SELECT vc FROM typed.all_types WHERE id = 1",
            "😀 emoji 𝄞 and ünïcödé",
        ),
        (
            "SELECT ST_AsText(geo) FROM typed.all_types WHERE id = 1",
            "POINT(1.5 -2.25)",
        ),
        (
            "SELECT LENGTH(bl) FROM typed.all_types WHERE id = 5",
            "16777228",
        ),
        (
            "SELECT biu FROM typed.all_types WHERE id = 1",
            "18446744073709551615",
        ),
        ("SELECT COUNT(*) FROM typed.child WHERE id = 0", "1"),
        ("SELECT secret FROM typed.child WHERE id = 7", "s7"),
        ("SELECT typed.twice(21)", "42"),
        ("SELECT COUNT(*) FROM typed.child_view", "10"),
        (
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'typed'",
            "2",
        ),
    ];
    for (sql, expected) in probes {
        assert_eq!(
            destination.query_value(sql).await?.as_deref(),
            Some(expected),
            "{sql}"
        );
    }
    for table in ["all_types", "child"] {
        assert_same_definition(&source, &destination, "typed", table).await?;
    }
    // The trigger came along, fires for an application's writes on the
    // destination, and did not fire for dts's own (the hashes above match).
    destination
        .exec("INSERT INTO typed.child (id, a, b, secret) VALUES (99999, 1, 'k1', 'quiet')")
        .await?;
    assert_eq!(
        destination
            .query_value("SELECT secret FROM typed.child WHERE id = 99999")
            .await?
            .as_deref(),
        Some("QUIET")
    );
    Ok(cluster.logs())
}

/// A table that exists on the destination with another character set
/// (conflict_mode = "ignore") gets the source's text converted, not its
/// bytes, by LOAD DATA and by INSERT alike.
#[tokio::test]
async fn text_is_converted_into_an_existing_column_of_another_charset() -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    source
        .exec(
            "CREATE DATABASE cs; CREATE TABLE cs.t (id INT PRIMARY KEY, \
             s VARCHAR(20) CHARACTER SET latin1, u VARCHAR(20) CHARACTER SET utf8mb4); \
             INSERT INTO cs.t VALUES (1, 'café', 'ünï'), (2, NULL, 'x\ty')",
        )
        .await?;
    let load = MariaDb::start(2).await?;
    let insert = MariaDb::start_with(3, &["--local-infile=0"]).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    for (name, destination) in [("load", &load), ("insert", &insert)] {
        destination
            .exec(
                "CREATE DATABASE cs; CREATE TABLE cs.t (id INT PRIMARY KEY, \
                 s VARCHAR(20) CHARACTER SET utf8mb4, u VARCHAR(20) CHARACTER SET latin1)",
            )
            .await?;
        let spec = format!(
            "conflict_mode = \"ignore\"\n{}",
            sync_task(
                name,
                source.port,
                destination.port,
                &["full"],
                "[[objects]]\ndatabase = \"cs\"",
                1,
            )
        );
        cluster.run_task_until(&spec, "done", SYNC_TIMEOUT).await?;
        for (sql, expected) in [
            ("SELECT HEX(s) FROM cs.t WHERE id = 1", Some("636166C3A9")),
            ("SELECT HEX(u) FROM cs.t WHERE id = 1", Some("FC6EEF")),
            ("SELECT s IS NULL FROM cs.t WHERE id = 2", Some("1")),
            ("SELECT HEX(u) FROM cs.t WHERE id = 2", Some("780979")),
        ] {
            assert_eq!(
                destination.query_value(sql).await?.as_deref(),
                expected,
                "{name}: {sql}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn worker_killed_mid_copy_resumes_without_copying_done_chunks_again() -> anyhow::Result<()> {
    let (source, destination) = servers_with_a_big_table().await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(1)
        .worker(1)
        .start()
        .await?;
    let task = cluster
        .create_task(&big_table_task(&source, &destination), true)
        .await?
        .id;
    let chunks_done = |epoch: Option<u64>| {
        let filter = epoch
            .map(|e| format!(" AND epoch = {e}"))
            .unwrap_or_default();
        format!("SELECT COUNT(*) FROM dts_meta.chunks WHERE done = 1{filter}")
    };
    let first = wait_for("a few chunks copied", SYNC_TIMEOUT, || async {
        let done: u64 = destination
            .query_value(&chunks_done(None))
            .await
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok((done >= 3).then_some(()))
    })
    .await;
    first?;
    let owner = cluster.task(&task).await?;
    cluster.worker(&owner.worker_id)?.process.kill();
    let done_at_kill: u64 = destination
        .query_value(&chunks_done(None))
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // The plan is stored a batch at a time while the copy runs: the kill
    // may cut it short too.
    let planned_at_kill: u64 = destination
        .query_value("SELECT COUNT(*) FROM dts_meta.chunks")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    println!(
        "killed {} with {done_at_kill}/{planned_at_kill} chunks done",
        owner.worker_id
    );
    assert!(
        done_at_kill < planned_at_kill,
        "the copy finished before the kill; the test needs a bigger table"
    );
    // The secondary index waits for the rows, and its definition is kept
    // where the next owner finds it.
    assert_eq!(
        destination
            .query_value("SELECT definition FROM dts_meta.deferred_indexes WHERE tbl = 'rows'")
            .await?
            .as_deref(),
        Some("KEY `by_pad` (`pad`(20))")
    );

    let moved = cluster
        .wait_for_task_moved(&task, &owner.worker_id, Duration::from_secs(30))
        .await?;
    assert_eq!(moved.epoch, owner.epoch + 1);
    cluster
        .wait_for_task_phase(&task, "done", SYNC_TIMEOUT)
        .await?;
    // Chunks committed by the first owner were not copied again (a second copy
    // would have failed on the primary key anyway), the rest by the second.
    let first_owner: u64 = destination
        .query_value(&chunks_done(Some(owner.epoch)))
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        first_owner >= done_at_kill,
        "done chunks were redone: {first_owner} < {done_at_kill}"
    );
    let all_done: u64 = destination
        .query_value(&chunks_done(None))
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let total: u64 = destination
        .query_value("SELECT COUNT(*) FROM dts_meta.chunks")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // 400,000 rows in chunks of 5,000, and the last chunk after the last bound.
    assert_eq!((all_done, total), (81, 81));
    assert_same_rows(&source, &destination, &[("big", "rows")]).await?;
    // The deferred index was added back.
    assert_same_definition(&source, &destination, "big", "rows").await?;
    assert_eq!(
        destination
            .query_value("SELECT COUNT(*) FROM dts_meta.deferred_indexes")
            .await?
            .as_deref(),
        Some("0")
    );
    Ok(())
}

/// A chunk plan is stored a batch at a time while the copy runs, so a
/// runtime that stops mid-plan leaves a prefix of it in the ledger. Such a
/// prefix (made here by pausing the task and cutting its ledger back to the
/// chunk after the last one copied) is kept, and planning goes on from its
/// last bound: the same chunks as the whole plan, done ones not copied again.
#[tokio::test]
async fn a_chunk_plan_cut_short_goes_on_from_its_last_stored_bound() -> anyhow::Result<()> {
    let (source, destination) = servers_with_a_big_table().await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(1)
        .start()
        .await?;
    let task = cluster
        .create_task(&big_table_task(&source, &destination), true)
        .await?
        .id;
    let count = |sql: &'static str| {
        let destination = &destination;
        async move {
            anyhow::Ok(
                destination
                    .query_value(sql)
                    .await?
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0),
            )
        }
    };
    wait_for(
        "the whole plan stored and a few chunks copied",
        SYNC_TIMEOUT,
        || async {
            let done = count("SELECT COUNT(*) FROM dts_meta.chunks WHERE done = 1").await?;
            let ends =
                count("SELECT COUNT(*) FROM dts_meta.chunks WHERE upper_bound IS NULL").await?;
            Ok((done >= 3 && ends == 1).then_some(()))
        },
    )
    .await?;
    pause_until_stopped(&cluster, &task).await?;
    let whole_plan = "SELECT GROUP_CONCAT(chunk_no, ':', COALESCE(HEX(upper_bound), 'end') \
                      ORDER BY chunk_no) FROM dts_meta.chunks";
    let planned = destination.query_value(whole_plan).await?;
    // One copier copies a table's chunks in order: the done ones are a prefix.
    let cut = count("SELECT MAX(chunk_no) + 1 FROM dts_meta.chunks WHERE done = 1").await?;
    destination
        .exec(&format!(
            "DELETE FROM dts_meta.chunks WHERE chunk_no > {cut}"
        ))
        .await?;
    assert_eq!(
        count("SELECT COUNT(*) FROM dts_meta.chunks WHERE upper_bound IS NULL").await?,
        0,
        "the copy was nearly done at the pause: the ledger kept its last chunk"
    );
    println!("paused with chunks 0..={cut} of the plan left in the ledger");

    cluster
        .control_task(&task, dts_proto::pb::TaskAction::Resume)
        .await?;
    cluster
        .wait_for_task_phase(&task, "done", SYNC_TIMEOUT)
        .await?;
    let logs = cluster.logs();
    assert!(
        logs.contains("resuming from the chunk ledger") && logs.contains("complete=false"),
        "the resumed runtime did not go on from the plan cut short:\n{logs}"
    );
    // The same chunks as the plan made in one go, each copied once (a second
    // copy of a done chunk would have failed on the primary key).
    assert_eq!(destination.query_value(whole_plan).await?, planned);
    assert_eq!(
        count("SELECT COUNT(*) FROM dts_meta.chunks WHERE done = 0").await?,
        0
    );
    assert_same_rows(&source, &destination, &[("big", "rows")]).await?;
    assert_same_definition(&source, &destination, "big", "rows").await?;
    Ok(())
}

/// With `full_sync_binlog = false` the copied rows stay out of the
/// destination's binlog, while the schema (the deferred index's ALTER too)
/// is still logged.
#[tokio::test]
async fn full_sync_binlog_off_keeps_copied_rows_out_of_the_destination_binlog() -> anyhow::Result<()>
{
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE quiet; USE quiet; CREATE TABLE quiet.rows (id INT PRIMARY KEY, v INT, KEY by_v (v)); \
             INSERT INTO quiet.rows SELECT seq, seq % 97 FROM seq_1_to_20000",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "quiet",
        source.port,
        destination.port,
        &["schema", "full"],
        "[[objects]]\ndatabase = \"quiet\"",
        2,
    )
    .replacen("du = 2", "du = 2\nfull_sync_binlog = false", 1);
    cluster.run_task_until(&spec, "done", SYNC_TIMEOUT).await?;
    assert_same_rows(&source, &destination, &[("quiet", "rows")]).await?;

    let events = destination.binlog_events().await?;
    let about_rows = |e: &&String| e.contains("`quiet`.`rows`") || e.contains("quiet.rows");
    assert!(
        !events
            .iter()
            .filter(about_rows)
            .any(|e| e.starts_with("Table_map")),
        "copied rows were logged: {events:#?}"
    );
    assert!(
        events.iter().any(|e| e.contains("ADD KEY `by_v`")),
        "the deferred index's ALTER was not logged: {events:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_fails_the_task_with_a_precise_message() -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.keyed (id INT PRIMARY KEY); \
             CREATE TABLE shop.child (id INT PRIMARY KEY, k INT, \
               CONSTRAINT to_keyed FOREIGN KEY (k) REFERENCES shop.keyed (id) ON DELETE CASCADE); \
             CREATE TABLE shop.keyless (v INT); CREATE USER 'weak'@'%' IDENTIFIED BY 'pw'; \
             GRANT SELECT ON shop.* TO 'weak'@'%'",
        )
        .await?;
    destination
        .exec("CREATE DATABASE shop; CREATE TABLE shop.keyed (id INT PRIMARY KEY)")
        .await?;
    destination
        .exec(
            "CREATE USER 'nolog'@'%' IDENTIFIED BY 'pw'; GRANT ALL ON *.* TO 'nolog'@'%'; \
             REVOKE SUPER, BINLOG ADMIN ON *.* FROM 'nolog'@'%'",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(8)
        .start()
        .await?;
    let objects = |tables: &str| format!("[[objects]]\ndatabase = \"shop\"\ntables = [{tables}]");
    let base = |objects: &str, modes: &[&str]| {
        sync_task("bad", source.port, destination.port, modes, objects, 1)
    };

    let cases: Vec<(String, &str)> = vec![
        (
            base(&objects("\"keyless\""), &["full"]),
            "has neither a primary key nor a unique key",
        ),
        (
            base(&objects("\"keyed\", \"child\""), &["incremental"]),
            "foreign key `to_keyed` of `shop`.`child` references `keyed` with ON DELETE CASCADE",
        ),
        (
            base(&objects("\"keyed\""), &["schema", "full"]),
            "already exists (conflict_mode = \"precheck_error\")",
        ),
        (
            base(&objects("\"missing\""), &["full"]),
            "table `shop`.`missing` does not exist",
        ),
        (
            base(&objects("\"keyed\""), &["full"]).replacen(
                "user = \"root\"",
                "user = \"root\"\npassword = \"wrong\"",
                1,
            ),
            "access denied",
        ),
        (
            base(&objects("\"keyed\""), &["incremental"]).replacen(
                "user = \"root\"",
                "user = \"weak\"\npassword = \"pw\"",
                1,
            ),
            "lacks a privilege",
        ),
        (
            base(&objects("\"keyed\""), &["full"])
                .replacen("du = 1", "du = 1\nfull_sync_binlog = false", 1)
                .replace(
                    &format!("port = {}\nuser = \"root\"", destination.port),
                    &format!(
                        "port = {}\nuser = \"nolog\"\npassword = \"pw\"",
                        destination.port
                    ),
                ),
            "full_sync_binlog = false sets sql_log_bin = 0",
        ),
    ];
    let mut ids = Vec::new();
    for (spec, _) in &cases {
        ids.push(cluster.create_task(spec, true).await?.id);
    }
    for (id, (_, expected)) in ids.iter().zip(&cases) {
        let failed = cluster
            .wait_for_task_status(id, "failed", Duration::from_secs(30))
            .await?;
        assert!(
            failed.last_error.contains(expected),
            "expected `{expected}` in: {}",
            failed.last_error
        );
    }

    // A database that is down is retried, not failed: the task keeps running and says why.
    let unreachable = base(&objects("\"keyed\""), &["full"])
        .replace(&format!("port = {}", destination.port), "port = 1");
    let id = cluster.create_task(&unreachable, true).await?.id;
    let retrying = wait_for(
        "the unreachable destination to be reported",
        Duration::from_secs(30),
        || async {
            let t = cluster.task(&id).await?;
            Ok(t.last_error.contains("unreachable").then_some(t))
        },
    )
    .await?;
    assert_eq!(retrying.status, "running");

    // Binlog not in ROW format.
    source
        .exec("SET GLOBAL binlog_format = 'STATEMENT'")
        .await?;
    let id = cluster
        .create_task(&base(&objects("\"keyed\""), &["incremental"]), true)
        .await?
        .id;
    let failed = cluster
        .wait_for_task_status(&id, "failed", Duration::from_secs(30))
        .await?;
    assert!(
        failed.last_error.contains("binlog_format is STATEMENT"),
        "{}",
        failed.last_error
    );
    // Nothing was written for tasks refused by prechecks.
    assert_eq!(
        destination
            .query_value("SELECT COUNT(*) FROM shop.keyed")
            .await?
            .as_deref(),
        Some("0")
    );
    Ok(())
}

#[tokio::test]
async fn binlog_off_purged_positions_and_destination_write_errors_are_precise() -> anyhow::Result<()>
{
    let no_binlog = MariaDb::start_with(3, &["--skip-log-bin"]).await?;
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    for server in [&no_binlog, &source] {
        server
            .exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)")
            .await?;
    }
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(8)
        .start()
        .await?;
    let objects = "[[objects]]\ndatabase = \"shop\"";

    // Binary log disabled on the source.
    let spec = sync_task(
        "nobinlog",
        no_binlog.port,
        destination.port,
        &["incremental"],
        objects,
        1,
    );
    let id = cluster.create_task(&spec, true).await?.id;
    let failed = cluster
        .wait_for_task_status(&id, "failed", Duration::from_secs(60))
        .await?;
    assert!(
        failed.last_error.contains("binary log is disabled"),
        "{}",
        failed.last_error
    );

    // A position purged while the task was paused.
    let spec = sync_task(
        "purged",
        source.port,
        destination.port,
        &["schema", "incremental"],
        objects,
        1,
    );
    let id = cluster
        .run_task_until(&spec, "incremental", Duration::from_secs(60))
        .await?;
    source.exec("INSERT INTO shop.t VALUES (1, 1)").await?;
    wait_for(
        "the first row on the destination",
        Duration::from_secs(30),
        || async {
            Ok((destination
                .query_value("SELECT COUNT(*) FROM shop.t")
                .await?
                .as_deref()
                == Some("1"))
            .then_some(()))
        },
    )
    .await?;
    pause_until_stopped(&cluster, &id).await?;
    source
        .exec("FLUSH BINARY LOGS; INSERT INTO shop.t VALUES (2, 2); FLUSH BINARY LOGS")
        .await?;
    // MariaDB keeps a file a dump thread still reads; purge until it is gone.
    let checkpoint: serde_json::Value = serde_json::from_str(
        &destination
            .query_value("SELECT position FROM dts_meta.checkpoints WHERE lane = 1")
            .await?
            .unwrap_or_default(),
    )?;
    let file = checkpoint["file"].as_str().unwrap_or_default().to_string();
    wait_for(
        &format!("{file} to be purged"),
        Duration::from_secs(20),
        || async {
            let mut conn = source.conn().await?;
            let logs: Vec<mysql_async::Row> =
                mysql_async::prelude::Queryable::query(&mut conn, "SHOW BINARY LOGS").await?;
            let last: String = logs.last().and_then(|r| r.get(0)).unwrap_or_default();
            mysql_async::prelude::Queryable::query_drop(
                &mut conn,
                format!("PURGE BINARY LOGS TO '{last}'"),
            )
            .await?;
            let remaining: Vec<mysql_async::Row> =
                mysql_async::prelude::Queryable::query(&mut conn, "SHOW BINARY LOGS").await?;
            Ok(remaining
                .iter()
                .all(|r| r.get::<String, _>(0).as_deref() != Some(file.as_str()))
                .then_some(()))
        },
    )
    .await?;
    cluster
        .control_task(&id, dts_proto::pb::TaskAction::Resume)
        .await?;
    let failed = cluster
        .wait_for_task_status(&id, "failed", Duration::from_secs(60))
        .await?;
    assert!(
        failed.last_error.contains("is no longer available"),
        "{}",
        failed.last_error
    );

    // A destination write error is retried (within retry.other_minutes) and said.
    destination.exec("CREATE DATABASE other").await?;
    source
        .exec("CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY)")
        .await?;
    let spec = sync_task(
        "write-error",
        source.port,
        destination.port,
        &["incremental"],
        "[[objects]]\ndatabase = \"other\"",
        1,
    );
    let id = cluster
        .run_task_until(&spec, "incremental", Duration::from_secs(60))
        .await?;
    // The destination lacks the table (no schema mode): every apply fails.
    source.exec("INSERT INTO other.t VALUES (1)").await?;
    let retrying = wait_for(
        "the write error to be reported",
        Duration::from_secs(30),
        || async {
            let t = cluster.task(&id).await?;
            Ok(t.last_error.contains("other").then_some(t))
        },
    )
    .await?;
    assert_eq!(
        retrying.status, "running",
        "retried within retry.other_minutes, not failed at once"
    );
    assert!(
        retrying.last_error.contains("doesn't exist"),
        "{}",
        retrying.last_error
    );
    Ok(())
}

#[tokio::test]
async fn tls_to_the_source_with_a_ca_works_and_its_failures_are_precise() -> anyhow::Result<()> {
    let certs = dts_tests::TestCertificates::generate()?;
    let options = certs.server_options();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let source = MariaDb::start_with(1, &options).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10)); \
             INSERT INTO shop.t VALUES (1, 'secret'), (2, 'data'); \
             CREATE USER 'secure'@'%' IDENTIFIED BY 'pw' REQUIRE SSL; GRANT ALL ON *.* TO 'secure'@'%'",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(8)
        .start()
        .await?;
    let spec = |name: &str, tls: &str| {
        sync_task(
            name,
            source.port,
            destination.port,
            &["schema", "full"],
            "[[objects]]\ndatabase = \"shop\"",
            1,
        )
        .replacen(
            "user = \"root\"",
            &format!("user = \"secure\"\npassword = \"pw\"\n{tls}"),
            1,
        )
    };
    let ca = certs.ca().display().to_string();

    let id = cluster
        .create_task(
            &spec("tls", &format!("tls = {{ enabled = true, ca = \"{ca}\" }}")),
            true,
        )
        .await?
        .id;
    cluster
        .wait_for_task_phase(&id, "done", SYNC_TIMEOUT)
        .await?;
    assert_same_rows(&source, &destination, &[("shop", "t")]).await?;

    let failures = [
        (spec("no-tls", ""), "access denied"),
        (spec("unknown-ca", "tls = { enabled = true }"), "TLS failed"),
        (
            spec(
                "missing-ca",
                "tls = { enabled = true, ca = \"/nonexistent/ca.pem\" }",
            ),
            "cannot read CA file",
        ),
    ];
    for (text, expected) in failures {
        let id = cluster.create_task(&text, true).await?.id;
        let failed = cluster
            .wait_for_task_status(&id, "failed", Duration::from_secs(30))
            .await?;
        assert!(
            failed.last_error.contains(expected),
            "expected `{expected}` in: {}",
            failed.last_error
        );
    }
    Ok(())
}

/// A worker whose pooled connections are all taken waits, then says so; it
/// once reported the server as unreachable, which sent people to look at the
/// network instead of at dts.
#[tokio::test]
async fn a_pool_with_every_connection_taken_says_so_not_unreachable() -> anyhow::Result<()> {
    use dts_worker::endpoint::Database;
    use dts_worker::error::{Side, SyncError};
    let server = MariaDb::start(1).await?;
    let endpoint = dts_common::spec::Endpoint {
        host: "127.0.0.1".into(),
        port: server.port,
        user: "root".into(),
        password: String::new(),
        password_file: None,
        password_env: None,
        tls: Default::default(),
        connection: None,
    };
    let database = Database::new(Side::Destination, &endpoint, 1)?;
    let _held = database.conn().await?;
    match database.conn().await {
        Err(SyncError::Query { detail, .. }) => {
            assert!(detail.contains("all 1 pooled connections"), "{detail}");
        }
        Err(other) => anyhow::bail!("expected a pool error, got: {other}"),
        Ok(_) => anyhow::bail!("a second connection came from a pool of one"),
    }
    Ok(())
}

/// DDL on a table while dts copies it. The copy's first chunk is held on a
/// destination row lock while the source table changes, so the rest of the
/// table is read after the change. A dropped column breaks the copy's own
/// reads; a changed character set does not, and the rows read after it
/// arrive as latin1-labelled UTF-8 that replaying the ALTER would double-
/// encode. Both fail the task with the table and the reason, and the ALTER
/// is not replayed over the copied rows. An ALTER of indexes alone changes
/// no row: the task goes on, and the index arrives with the catch-up.
#[tokio::test]
async fn ddl_on_a_table_during_its_copy_fails_the_task_with_the_table_and_the_reason(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(1)
        .start()
        .await?;
    let cases = [
        (
            "dropped",
            "ALTER TABLE dropped.t DROP COLUMN extra",
            Some("Unknown column"),
        ),
        (
            "recoded",
            "ALTER TABLE recoded.t MODIFY v VARCHAR(20) CHARACTER SET utf8mb4",
            Some("ALTER TABLE recoded.t MODIFY v"),
        ),
        ("indexed", "ALTER TABLE indexed.t ADD INDEX by_v (v)", None),
    ];
    for (db, ddl, reason) in cases {
        let table = format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, \
             v VARCHAR(20) CHARACTER SET latin1, extra INT)"
        );
        source
            .exec(&format!(
                "{table}; USE {db}; INSERT INTO t SELECT seq, CONCAT('café-', seq), seq FROM seq_1_to_12000"
            ))
            .await?;
        destination.exec(&table).await?;
        // Holds the first chunk's LOAD on the key of row 1 until rolled back.
        let mut blocker = destination.conn().await?;
        blocker
            .query_drop(format!(
                "START TRANSACTION; INSERT INTO {db}.t VALUES (1, 'blocker', 0)"
            ))
            .await?;
        let spec = format!(
            "conflict_mode = \"ignore\"\n{}",
            sync_task(
                db,
                source.port,
                destination.port,
                &["full", "incremental"],
                &format!("[[objects]]\ndatabase = \"{db}\""),
                1,
            )
        );
        let task = cluster.create_task(&spec, true).await?.id;
        // The chunk's rows were read before its LOAD began; the next chunk's
        // are read after this LOAD commits, which the blocker holds off.
        wait_for(
            "the first chunk's LOAD to wait for the blocker",
            Duration::from_secs(30),
            || async {
                let loading = destination
                    .query_value(&format!(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                     WHERE INFO LIKE 'LOAD DATA%`{db}`.`t`%'"
                    ))
                    .await?;
                Ok((loading.as_deref() == Some("1")).then_some(()))
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs()))?;
        source.exec(ddl).await?;
        blocker.query_drop("ROLLBACK").await?;
        drop(blocker);

        let Some(reason) = reason else {
            cluster
                .wait_for_task_phase(&task, "incremental", SYNC_TIMEOUT)
                .await?;
            wait_caught_up(&source, &destination, 1, SYNC_TIMEOUT).await?;
            assert_same_rows(&source, &destination, &[(db, "t")]).await?;
            let index = destination
                .query_value(&format!(
                    "SELECT COUNT(*) FROM information_schema.STATISTICS \
                     WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 't' AND INDEX_NAME = 'by_v'"
                ))
                .await?;
            assert_eq!(index.as_deref(), Some("1"), "the index was not replayed");
            continue;
        };
        let failed = cluster
            .wait_for_task_status(&task, "failed", SYNC_TIMEOUT)
            .await?;
        for expected in [
            &format!("table `{db}`.`t` changed while dts copied it"),
            reason,
            "does not support DDL on a table during its full sync",
        ] {
            assert!(
                failed.last_error.contains(expected),
                "expected `{expected}` in: {}",
                failed.last_error
            );
        }
        // The destination kept the definition the copy wrote under.
        let definition = destination
            .query_value(&format!(
                "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 't' AND COLUMN_NAME = 'v'"
            ))
            .await?;
        assert_eq!(definition.as_deref(), Some("latin1"), "{db}");
    }
    Ok(())
}
