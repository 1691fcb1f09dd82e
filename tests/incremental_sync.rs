//! Incremental sync through real processes: writes during the whole full sync
//! converge, DDL is followed, every column type survives the binlog, and a
//! destination that lost a row the source updates is caught.
//! (Failover under load lives in failover.rs.)

use dts_proto::pb;
use dts_tests::compare::assert_same_rows;
use dts_tests::converge::{assert_healthy, wait_caught_up};
use dts_tests::fixtures::{sync_task, EVERY_TYPE_ROWS, EVERY_TYPE_TABLES};
use dts_tests::load::{Load, LOAD_SCHEMA};
use dts_tests::scenario::IncrementalSync;
use dts_tests::{wait_for, MariaDb, TestCluster};
use mysql_async::prelude::Queryable;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn writes_during_the_whole_full_sync_converge() -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source.exec(LOAD_SCHEMA).await?;
    source
        .exec("USE load_db; INSERT INTO items SELECT seq, seq % 13, CONCAT('seed-', seq), seq / 7, NOW(6) FROM seq_1_to_60000")
        .await?;
    let load = Load::start(&source, 1).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let spec = sync_task(
        "converge",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"load_db\"",
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    // Keep writing in strict mode for a while, then stop and compare.
    let target = load.committed() + 300;
    wait_for("more source transactions", TIMEOUT, || async {
        Ok((load.committed() >= target).then_some(()))
    })
    .await?;
    let committed = load.stop().await?;
    println!("{committed} source transactions during the test");
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    assert_same_rows(
        &source,
        &destination,
        &[("load_db", "items"), ("load_db", "counters")],
    )
    .await
}

#[tokio::test]
async fn ddl_during_incremental_is_followed_and_unsupported_ddl_is_skipped_visibly(
) -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE app; USE app; CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20)); \
             CREATE TABLE doomed (id INT PRIMARY KEY); CREATE TABLE emptied (id INT PRIMARY KEY); \
             INSERT INTO a VALUES (1, 'one'), (2, 'two'); INSERT INTO doomed VALUES (1); INSERT INTO emptied VALUES (1), (2)",
        "app",
        1,
    )
    .await?;
    source
        .exec(
            "USE app; \
             ALTER TABLE a ADD COLUMN added DATETIME(3) NULL, ADD COLUMN score INT UNSIGNED NOT NULL DEFAULT 7; \
             INSERT INTO a VALUES (3, 'three', '2024-01-02 03:04:05.678', 4294967295); \
             UPDATE a SET score = 1 WHERE id = 1; \
             CREATE INDEX by_v ON a (v); \
             RENAME TABLE a TO renamed; \
             INSERT INTO renamed (id, v) VALUES (4, 'four'); \
             TRUNCATE TABLE emptied; INSERT INTO emptied VALUES (9); \
             DROP TABLE doomed; \
             CREATE TABLE fresh (id INT PRIMARY KEY, note TEXT); INSERT INTO fresh VALUES (1, 'new'), (2, 'rows'); \
             CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM fresh WHERE id < 0; \
             INSERT INTO fresh VALUES (3, 'after event')",
        )
        .await?;
    wait_caught_up(&source, &destination, 1, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    assert_same_rows(
        &source,
        &destination,
        &[("app", "renamed"), ("app", "emptied"), ("app", "fresh")],
    )
    .await?;
    let tables = destination
        .query_value("SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app'")
        .await?;
    assert_eq!(tables.as_deref(), Some("emptied,fresh,renamed"));
    let index = destination
        .query_value("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'app' AND INDEX_NAME = 'by_v'")
        .await?;
    assert_eq!(index.as_deref(), Some("1"));
    // The event was not created, and the task says so.
    let events = destination
        .query_value("SELECT COUNT(*) FROM information_schema.EVENTS")
        .await?;
    assert_eq!(events.as_deref(), Some("0"));
    let info = wait_for(
        "the skipped DDL to be reported",
        Duration::from_secs(10),
        || async {
            let t = cluster.task(&task).await?;
            let position = t
                .checkpoint
                .as_ref()
                .map(|c| c.position.clone())
                .unwrap_or_default();
            Ok(position.contains("EVENT nightly ON SCHEDULE").then_some(t))
        },
    )
    .await?;
    println!(
        "checkpoint: {:?}",
        info.checkpoint.map(|c| (c.display, c.position))
    );
    Ok(())
}

/// Strict apply writes the net updates of a batch in one upsert and counts
/// the rows it changed, instead of counting the rows first: a row that
/// already has its new values must still pass, and a row the destination
/// lacks must stop the task without being inserted (a conflict, and the
/// default policy fails).
#[tokio::test]
async fn an_update_the_destination_already_has_passes_and_one_of_a_missing_row_is_caught(
) -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE app; USE app; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); \
             INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        "app",
        1,
    )
    .await?;

    // Row 2 already holds what the source is about to write: the upsert
    // counts it as found, not changed, and the lane must check and go on.
    destination
        .exec("UPDATE app.t SET v = 'second' WHERE id = 2")
        .await?;
    source
        .exec(
            "USE app; START TRANSACTION; UPDATE t SET v = 'first' WHERE id = 1; \
             UPDATE t SET v = 'second' WHERE id = 2; COMMIT",
        )
        .await?;
    wait_caught_up(&source, &destination, 1, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    assert_same_rows(&source, &destination, &[("app", "t")]).await?;

    // Row 3 is gone from the destination: its update must not bring it back.
    destination.exec("DELETE FROM app.t WHERE id = 3").await?;
    source
        .exec("UPDATE app.t SET v = 'third' WHERE id = 3")
        .await?;
    // A conflict, and the default policy is to fail.
    let info = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    println!("reported: {}", info.last_error);
    assert!(
        info.last_error
            .contains("conflict on `app`.`t` at key {\"id\":3}: an update found no row"),
        "the error names the table, the key and the conflict: {}",
        info.last_error
    );
    let row_3 = destination
        .query_value("SELECT COUNT(*) FROM app.t WHERE id = 3")
        .await?;
    assert_eq!(row_3.as_deref(), Some("0"), "the missing row was inserted");
    let row_1 = destination
        .query_value("SELECT v FROM app.t WHERE id = 1")
        .await?;
    assert_eq!(row_1.as_deref(), Some("first"));
    Ok(())
}

#[tokio::test]
async fn every_column_type_round_trips_through_the_binlog() -> anyhow::Result<()> {
    every_column_type_through_the_binlog("").await
}

/// With rows compared before they are written (and any difference failing
/// the task), every type compares equal to itself: the destination's values
/// read back match the binlog's before-images, with no false conflict.
#[tokio::test]
async fn every_column_type_compares_equal_to_its_before_image() -> anyhow::Result<()> {
    every_column_type_through_the_binlog("[conflicts]\ncompare_rows = true").await
}

async fn every_column_type_through_the_binlog(conflicts: &str) -> anyhow::Result<()> {
    // Different server time zones: TIMESTAMP must not shift on the way.
    let source = MariaDb::start_with(1, &["--default-time-zone=+05:00"]).await?;
    let destination = MariaDb::start_with(2, &["--default-time-zone=-03:00"]).await?;
    source.exec(EVERY_TYPE_TABLES).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "types-binlog",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        &format!("[[objects]]\ndatabase = \"typed\"\n{conflicts}"),
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    // Every value now travels as a binlog row image.
    source.exec(EVERY_TYPE_ROWS).await?;
    source
        .exec(
            "SET SESSION time_zone = '+00:00'; USE typed; \
             UPDATE all_types SET tiu = 254, miu = 16777214, biu = 18446744073709551614, st = 'b,c', e = 'medium', \
               ts = '2001-02-03 04:05:06.070809', yr = 0, lat = 'ÀÉÎ', b64 = b'1010', tm = '-100:00:00.000001' WHERE id = 1; \
             UPDATE all_types SET id = 40 WHERE id = 4; \
             DELETE FROM all_types WHERE id = 3; \
             UPDATE child SET secret = 'moved' WHERE id BETWEEN 100 AND 2100; \
             DELETE FROM child WHERE id > 11000; DELETE FROM parent WHERE a > 11000",
        )
        .await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
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
    let probes = [
        (
            "SELECT UNIX_TIMESTAMP(ts) FROM typed.all_types WHERE id = 1",
            "981173106.070809",
        ),
        ("SELECT yr FROM typed.all_types WHERE id = 1", "0000"),
        ("SELECT lat FROM typed.all_types WHERE id = 1", "ÀÉÎ"),
        (
            "SELECT CONCAT(tiu, ' ', biu, ' ', st, ' ', e) FROM typed.all_types WHERE id = 1",
            "254 18446744073709551614 b,c medium",
        ),
        (
            "SELECT tm FROM typed.all_types WHERE id = 1",
            "-100:00:00.000001",
        ),
        (
            "SELECT LENGTH(bl) FROM typed.all_types WHERE id = 5",
            "16777228",
        ),
        ("SELECT COUNT(*) FROM typed.all_types WHERE id = 40", "1"),
    ];
    for (sql, expected) in probes {
        assert_eq!(
            destination.query_value(sql).await?.as_deref(),
            Some(expected),
            "{sql}"
        );
    }
    Ok(())
}

/// A rows event whose images lack columns (binlog_row_image = MINIMAL, here
/// set by the writing session alone, after the prechecks saw FULL): applied,
/// it would write what it lacks as NULL. The task fails instead, naming the
/// table and the position, and the destination keeps the row as it was.
#[tokio::test]
async fn a_partial_row_image_fails_the_task_instead_of_writing_what_it_lacks() -> anyhow::Result<()>
{
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, a INT, b VARCHAR(20)); \
             INSERT INTO app.t VALUES (1, 10, 'kept'), (2, 20, 'also kept')",
        "app",
        1,
    )
    .await?;
    source
        .exec("SET SESSION binlog_row_image = 'MINIMAL'; UPDATE app.t SET a = 11 WHERE id = 1")
        .await?;
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    for expected in ["`app`.`t`", "partial row image", "binlog_row_image"] {
        assert!(
            failed.last_error.contains(expected),
            "expected `{expected}` in: {}",
            failed.last_error
        );
    }
    assert_eq!(
        destination
            .query_value("SELECT CONCAT_WS(',', id, a, b) FROM app.t ORDER BY id LIMIT 1")
            .await?
            .as_deref(),
        Some("1,10,kept")
    );
    Ok(())
}

/// DML logged as a statement (a session that set binlog_format STATEMENT for
/// itself, after the prechecks saw ROW) carries no rows: skipped, its change
/// would be lost. The task fails instead, naming the statement and position.
/// A LOAD DATA so logged travels in events of its own and fails it too.
#[tokio::test]
async fn statement_logged_dml_fails_the_task_instead_of_being_skipped() -> anyhow::Result<()> {
    let source = MariaDb::start_with(1, &["--secure-file-priv="]).await?;
    let destination = MariaDb::start(2).await?;
    let data = tempfile::NamedTempFile::new()?;
    std::fs::write(data.path(), "3\t30\tloaded\n")?;
    let cases = [
        (
            "updated",
            "UPDATE updated.t SET a = 11 WHERE id = 1".to_string(),
            "UPDATE",
        ),
        (
            "loaded",
            format!(
                "LOAD DATA INFILE '{}' INTO TABLE loaded.t",
                data.path().display()
            ),
            "LOAD",
        ),
    ];
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    for (db, dml, verb) in cases {
        source
            .exec(&format!(
                "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT, b VARCHAR(20)); \
                 INSERT INTO {db}.t VALUES (1, 10, 'kept'), (2, 20, 'also kept')"
            ))
            .await?;
        let spec = sync_task(
            db,
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            &format!("[[objects]]\ndatabase = \"{db}\""),
            1,
        );
        let task = cluster
            .run_task_until(&spec, "incremental", TIMEOUT)
            .await?;
        // What pt-table-checksum writes, run in the synced database and
        // reading it, goes to another database: no reason to fail.
        source
            .exec(&format!(
                "CREATE DATABASE IF NOT EXISTS checks; \
                 CREATE TABLE IF NOT EXISTS checks.sums (db VARCHAR(64) PRIMARY KEY, n INT); \
                 USE {db}; SET SESSION binlog_format = 'STATEMENT'; \
                 REPLACE INTO `checks`.`sums` (db, n) SELECT '{db}', COUNT(*) FROM `{db}`.`t`"
            ))
            .await?;
        source
            .exec(&format!("INSERT INTO {db}.t VALUES (9, 90, 'after')"))
            .await?;
        wait_for("the row after the checksum applied", TIMEOUT, || async {
            let n = destination
                .query_value(&format!("SELECT COUNT(*) FROM {db}.t WHERE id = 9"))
                .await?;
            Ok((n.as_deref() == Some("1")).then_some(()))
        })
        .await?;
        source
            .exec(&format!("SET SESSION binlog_format = 'STATEMENT'; {dml}"))
            .await?;
        let failed = cluster
            .wait_for_task_status(&task, "failed", TIMEOUT)
            .await?;
        let statement = format!("statement-logged {verb}");
        for expected in [statement.as_str(), "binlog_format"] {
            assert!(
                failed.last_error.contains(expected),
                "expected `{expected}` in: {}",
                failed.last_error
            );
        }
        assert_eq!(
            destination
                .query_value(&format!(
                    "SELECT GROUP_CONCAT(CONCAT_WS(',', id, a, b) ORDER BY id SEPARATOR ' | ') FROM {db}.t"
                ))
                .await?
                .as_deref(),
            Some("1,10,kept | 2,20,also kept | 9,90,after"),
            "{db}"
        );
    }
    Ok(())
}

/// Statements inside a source transaction belong to it: a SAVEPOINT (as
/// nested transactions in ORMs write), or, under MIXED, another database's
/// DML logged as a statement between row-logged changes (UUID() makes this
/// database's statements unsafe, so they are logged as rows). None may end
/// the transaction early and drop the rows before it.
#[tokio::test]
async fn statements_inside_a_transaction_keep_its_rows() -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, a INT, b VARCHAR(20)); \
             CREATE DATABASE other; CREATE TABLE other.x (id INT PRIMARY KEY)",
        "app",
        2,
    )
    .await?;
    source
        .exec(
            "USE app; \
             BEGIN; INSERT INTO t VALUES (1, 1, 'before'); SAVEPOINT s1; \
             INSERT INTO t VALUES (2, 2, 'rolled back'); ROLLBACK TO SAVEPOINT s1; \
             INSERT INTO t VALUES (3, 3, 'after'); COMMIT; \
             BEGIN; INSERT INTO t VALUES (4, 4, 'before'); SAVEPOINT s2; \
             UPDATE t SET a = 40 WHERE id = 4; RELEASE SAVEPOINT s2; COMMIT; \
             SET SESSION binlog_format = 'MIXED'; \
             BEGIN; INSERT INTO t VALUES (5, 5, LEFT(UUID(), 8)); \
             USE other; INSERT INTO x VALUES (1); USE app; \
             UPDATE t SET a = 50, b = LEFT(UUID(), 8) WHERE id = 5; COMMIT",
        )
        .await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    assert_same_rows(&source, &destination, &[("app", "t")]).await?;
    assert_eq!(
        destination
            .query_value("SELECT GROUP_CONCAT(CONCAT(id, ':', a) ORDER BY id) FROM app.t")
            .await?
            .as_deref(),
        Some("1:1,3:3,4:40,5:50")
    );
    Ok(())
}

/// An XA transaction committed in one phase is an ordinary transaction in
/// the binlog and arrives; a two-phase one (prepared, its outcome in a later
/// event group) fails the task with the table and position, and nothing of
/// it is applied.
#[tokio::test]
async fn a_two_phase_xa_transaction_fails_the_task_and_a_one_phase_one_arrives(
) -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, a INT)",
        "app",
        1,
    )
    .await?;
    source
        .exec("XA START 'one'; INSERT INTO app.t VALUES (1, 1); XA END 'one'; XA COMMIT 'one' ONE PHASE")
        .await?;
    wait_caught_up(&source, &destination, 1, TIMEOUT).await?;
    assert_same_rows(&source, &destination, &[("app", "t")]).await?;

    source
        .exec(
            "XA START 'two'; INSERT INTO app.t VALUES (2, 2); XA END 'two'; XA PREPARE 'two'; \
             XA COMMIT 'two'",
        )
        .await?;
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    for expected in ["two-phase XA transaction changed `app`.`t`", "ONE PHASE"] {
        assert!(
            failed.last_error.contains(expected),
            "expected `{expected}` in: {}",
            failed.last_error
        );
    }
    assert_eq!(
        destination
            .query_value("SELECT GROUP_CONCAT(id) FROM app.t")
            .await?
            .as_deref(),
        Some("1")
    );
    Ok(())
}

/// Views, procedures and functions redefined on the source (DROP, then
/// CREATE of the same name) are redefined on the destination, and a view
/// replaced by a table of its name is replaced there too: before, DROP was
/// skipped, so the next CREATE failed (1304) and stalled the task, or (a
/// view, 1050) was swallowed after a restart and left the old definition.
#[tokio::test]
async fn redefined_views_and_routines_are_redefined_on_the_destination() -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE r1; CREATE TABLE r1.t (id INT PRIMARY KEY, v VARCHAR(10)); \
         CREATE PROCEDURE r1.copied() SELECT 0; CREATE VIEW r1.old AS SELECT id FROM r1.t",
        "r1",
        1,
    )
    .await?;
    source
        .exec(
            "USE r1; \
             CREATE PROCEDURE p() BEGIN SELECT 1; END; DROP PROCEDURE p; \
             CREATE PROCEDURE p() BEGIN SELECT 2; END; \
             DROP PROCEDURE IF EXISTS copied; CREATE PROCEDURE copied() SELECT 3; \
             CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1; DROP FUNCTION f; \
             CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 2; \
             CREATE VIEW v AS SELECT id FROM t; DROP VIEW v; CREATE VIEW v AS SELECT id, v FROM t; \
             DROP VIEW old; CREATE TABLE old (id INT PRIMARY KEY, w INT); INSERT INTO old VALUES (1, 1); \
             INSERT INTO t VALUES (1, 'after')",
        )
        .await?;
    wait_caught_up(&source, &destination, 1, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    let routine = |name: &str| {
        format!(
            "SELECT ROUTINE_DEFINITION FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = 'r1' AND ROUTINE_NAME = '{name}'"
        )
    };
    let p = destination.query_value(&routine("p")).await?;
    assert!(
        p.as_deref().is_some_and(|d| d.contains("SELECT 2")),
        "{p:?}"
    );
    let copied = destination.query_value(&routine("copied")).await?;
    assert!(
        copied.as_deref().is_some_and(|d| d.contains("SELECT 3")),
        "{copied:?}"
    );
    assert_eq!(
        destination.query_value("SELECT r1.f()").await?.as_deref(),
        Some("2")
    );
    let view = destination
        .query_value("SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'r1' AND TABLE_NAME = 'v'")
        .await?
        .unwrap_or_default();
    assert!(view.contains("`v`"), "the old view is still there: {view}");
    assert_eq!(
        destination
            .query_value("SELECT CONCAT(TABLE_TYPE, ' ', (SELECT w FROM r1.old WHERE id = 1)) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'r1' AND TABLE_NAME = 'old'")
            .await?
            .as_deref(),
        Some("BASE TABLE 1")
    );
    assert_same_rows(&source, &destination, &[("r1", "t")]).await?;
    // DROP DATABASE is never followed: the destination keeps its copy, and
    // the task lists the statement, whole.
    source.exec("DROP DATABASE r1").await?;
    wait_for("the DROP DATABASE to be listed", TIMEOUT, || async {
        let t = cluster.task(&task).await?;
        let position = t.checkpoint.map(|c| c.position).unwrap_or_default();
        Ok(position.contains("DROP DATABASE r1").then_some(()))
    })
    .await?;
    assert_healthy(&cluster, &task).await?;
    assert_eq!(
        destination
            .query_value("SELECT COUNT(*) FROM r1.t")
            .await?
            .as_deref(),
        Some("1")
    );
    Ok(())
}

/// The first DDL after a (re)start may have run before the crash, so an
/// "already exists" answer may mean it did; it is taken for that only when
/// the destination table is what the statement leaves. A table of that name
/// made by someone else fails the task with both definitions, where the
/// error used to be swallowed.
#[tokio::test]
async fn an_already_applied_answer_to_ddl_must_match_what_the_ddl_leaves() -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE r1; CREATE TABLE r1.t (id INT PRIMARY KEY)",
        "r1",
        1,
    )
    .await?;
    destination
        .exec("CREATE TABLE r1.x (id INT PRIMARY KEY, other TEXT)")
        .await?;
    source
        .exec("CREATE TABLE r1.x (id INT PRIMARY KEY, v INT); INSERT INTO r1.x VALUES (1, 1)")
        .await?;
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    assert!(
        failed.last_error.contains("`r1`.`x`")
            && failed.last_error.contains("`v` int")
            && failed.last_error.contains("`other` text"),
        "{}",
        failed.last_error
    );
    Ok(())
}

/// The three trigger methods, one task each from one source database into
/// three copies: with the schema, after the full copy, or never. Triggers
/// created and dropped on the source during incremental sync are followed
/// (guarded, so dts's writes do not fire them: the log rows the source's
/// trigger wrote arrive once), or listed as skipped with `triggers = "skip"`.
#[tokio::test]
async fn triggers_are_created_with_the_schema_after_the_full_copy_or_never_and_followed(
) -> anyhow::Result<()> {
    use dts_tests::compare::assert_routed;
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE app; USE app; \
             CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(40)); \
             CREATE TABLE log (id INT AUTO_INCREMENT PRIMARY KEY, item INT); \
             CREATE TRIGGER log_insert AFTER INSERT ON items FOR EACH ROW INSERT INTO log (item) VALUES (NEW.id); \
             INSERT INTO items SELECT seq, CONCAT('v', seq) FROM seq_1_to_500",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(3)
        .start()
        .await?;
    let mut tasks = Vec::new();
    for (method, copy) in [
        ("with_schema", "t_with"),
        ("after_full", "t_after"),
        ("skip", "t_skip"),
    ] {
        let spec = format!(
            "triggers = \"{method}\"\n{}",
            sync_task(
                &format!("triggers-{method}"),
                source.port,
                destination.port,
                &["schema", "full", "incremental"],
                &format!("[[objects]]\ndatabase = \"app\"\nto = \"{copy}\""),
                1,
            )
        );
        let task = cluster
            .run_task_until(&spec, "incremental", TIMEOUT)
            .await?;
        tasks.push((method, copy, spec, task));
    }
    let triggers_of = |copy: &str| {
        format!(
            "SELECT IFNULL(GROUP_CONCAT(TRIGGER_NAME ORDER BY TRIGGER_NAME), '') FROM \
             information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{copy}'"
        )
    };
    for (method, copy, _, _) in &tasks {
        let expected = if *method == "skip" { "" } else { "log_insert" };
        let found = destination.query_value(&triggers_of(copy)).await?;
        assert_eq!(found.as_deref(), Some(expected), "{method}");
    }

    source
        .exec(
            "USE app; INSERT INTO items SELECT seq, 'later' FROM seq_501_to_600; \
             CREATE TRIGGER stamp BEFORE UPDATE ON items FOR EACH ROW SET NEW.v = CONCAT(NEW.v, '!'); \
             DROP TRIGGER log_insert; \
             UPDATE items SET v = 'changed' WHERE id <= 50; \
             INSERT INTO items VALUES (601, 'untriggered')",
        )
        .await?;
    // One lane per task, three tasks.
    wait_caught_up(&source, &destination, 3, TIMEOUT).await?;
    for (method, copy, spec, task) in &tasks {
        assert_healthy(&cluster, task).await?;
        // Each log row once: the destination's trigger did not fire for dts.
        assert_routed(&source, &destination, spec).await?;
        let expected = if *method == "skip" { "" } else { "stamp" };
        let found = destination.query_value(&triggers_of(copy)).await?;
        assert_eq!(found.as_deref(), Some(expected), "{method}");
    }
    let logged = source.query_value("SELECT COUNT(*) FROM app.log").await?;
    assert_eq!(logged.as_deref(), Some("600"));
    let (_, _, _, skip_task) = &tasks[2];
    wait_for(
        "the skipped trigger DDL to be reported",
        TIMEOUT,
        || async {
            let t = cluster.task(skip_task).await?;
            let position = t.checkpoint.map(|c| c.position).unwrap_or_default();
            let progress: serde_json::Value = serde_json::from_str(&position).unwrap_or_default();
            let skipped: Vec<&str> = progress["ddl_skipped"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str())
                .filter(|s| s.ends_with("(triggers = \"skip\")"))
                .collect();
            // CREATE TRIGGER stamp and DROP TRIGGER log_insert.
            Ok((skipped.len() == 2).then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// A task that reached incremental and is stopped before it applied any
/// change (a quiet source: no lane has a checkpoint yet) resumes from the end
/// of its copy. It once resumed from the source's end instead and lost
/// everything written while it was stopped.
/// The destination's own writers are not blocked by gaps the applier
/// locked. A route without inserts deletes keys the destination never
/// held; under REPEATABLE READ such a delete locked the gap where the key
/// would be until its transaction ended, and inserts into it, of the
/// destination's writers or of another lane, waited or deadlocked. Apply
/// sessions read committed, as replication appliers do.
#[tokio::test]
async fn a_delete_of_a_key_the_destination_lacks_locks_no_gap_its_writers_insert_into(
) -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start_with_objects(
        "CREATE DATABASE gaps; CREATE TABLE gaps.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO gaps.t VALUES (10, 0), (30, 0)",
        "gaps",
        "[[objects]]\ndatabase = \"gaps\"\ntables = [{ name = \"t\", dml = [\"update\", \"delete\"] }]",
        1,
    )
    .await?;
    // Row 20 never reaches the destination (the route takes no inserts).
    source.exec("INSERT INTO gaps.t VALUES (20, 0)").await?;
    // A destination session holds row 30, so the applier, deleting rows 20
    // and 30 in key order, waits inside its transaction.
    let mut holder = destination.conn().await?;
    holder.query_drop("START TRANSACTION").await?;
    holder
        .query_drop("SELECT v FROM gaps.t WHERE id = 30 FOR UPDATE")
        .await?;
    source
        .exec("DELETE FROM gaps.t WHERE id IN (20, 30)")
        .await?;
    // Still running after 200 ms, the delete waits for row 30, past 20.
    wait_for("the applier waiting for row 30", TIMEOUT, || async {
        let waiting = destination
            .query_value(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND TIME_MS > 200 \
                 AND INFO LIKE 'DELETE FROM `gaps`.`t`%20%30%'",
            )
            .await?;
        Ok((waiting.as_deref() == Some("1")).then_some(()))
    })
    .await?;
    // A writer of the destination inserts where row 20 would be.
    let mut writer = destination.conn().await?;
    writer
        .query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .await?;
    let inserted = writer.query_drop("INSERT INTO gaps.t VALUES (15, 0)").await;
    holder.query_drop("ROLLBACK").await?;
    inserted.map_err(|e| anyhow::anyhow!("the deleted key's gap was locked: {e}"))?;

    writer
        .query_drop("DELETE FROM gaps.t WHERE id = 15")
        .await?;
    wait_caught_up(&source, &destination, 1, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    let left = destination
        .query_value("SELECT GROUP_CONCAT(id ORDER BY id) FROM gaps.t")
        .await?;
    assert_eq!(
        left.as_deref(),
        Some("10"),
        "row 30 deleted, row 20 never there"
    );
    Ok(())
}

#[tokio::test]
async fn a_task_stopped_before_its_first_change_loses_nothing_written_meanwhile(
) -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE quiet; CREATE TABLE quiet.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO quiet.t VALUES (1, 1)",
        "quiet",
        2,
    )
    .await?;
    cluster.pause_task(&task, TIMEOUT).await?;
    source
        .exec(
            "INSERT INTO quiet.t VALUES (2, 2); UPDATE quiet.t SET v = 10 WHERE id = 1; \
             INSERT INTO quiet.t VALUES (3, 3)",
        )
        .await?;
    cluster.control_task(&task, pb::TaskAction::Resume).await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    assert_same_rows(&source, &destination, &[("quiet", "t")]).await?;
    assert_eq!(
        destination
            .query_value("SELECT GROUP_CONCAT(CONCAT(id, ':', v) ORDER BY id) FROM quiet.t")
            .await?
            .as_deref(),
        Some("1:10,2:2,3:3")
    );
    Ok(())
}

/// A backlog of wide rows is applied in bounded memory: one transaction of
/// many blobs streams through a lane instead of being buffered whole, small
/// transactions of blobs are handed to the lanes in batches bounded by their
/// size and not only by their row count, and the MySQL driver does not keep
/// a buffer per blob it carried. Before, a backlog of half this size raised
/// the worker's peak by 353 MiB.
#[tokio::test]
async fn a_backlog_of_wide_rows_is_applied_in_bounded_memory() -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE wide; CREATE TABLE wide.blobs (id INT PRIMARY KEY, body MEDIUMBLOB)",
        "wide",
        2,
    )
    .await?;
    cluster.pause_task(&task, TIMEOUT).await?;
    // Rows of 1 MiB: half of them in one transaction, then one per
    // transaction.
    let half = WIDE_BACKLOG_MIB / 2;
    source
        .exec(&format!(
            "USE wide; \
             INSERT INTO blobs SELECT seq, REPEAT(MD5(seq), 32768) FROM seq_1_to_{half}; \
             BEGIN NOT ATOMIC \
               FOR i IN {} .. {WIDE_BACKLOG_MIB} DO \
                 INSERT INTO blobs VALUES (i, REPEAT(MD5(i), 32768)); \
               END FOR; \
             END",
            half + 1
        ))
        .await?;
    let worker = &cluster.workers[0].process;
    let before = worker.peak_rss_kib()?;
    cluster.control_task(&task, pb::TaskAction::Resume).await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;
    assert_healthy(&cluster, &task).await?;
    assert_same_rows(&source, &destination, &[("wide", "blobs")]).await?;
    let grew_mib = worker.peak_rss_kib()?.saturating_sub(before) / 1024;
    assert!(
        grew_mib < WIDE_BACKLOG_PEAK_MIB,
        "applying a backlog of {WIDE_BACKLOG_MIB} MiB of rows raised the worker's peak by \
         {grew_mib} MiB (at most {WIDE_BACKLOG_PEAK_MIB} MiB expected)"
    );
    Ok(())
}

/// Rows of 1 MiB written while the task is paused.
const WIDE_BACKLOG_MIB: u64 = 480;
/// How far the worker's peak may grow while it applies them: about three
/// batches (`lanes::BATCH_BYTES`; one routed, one folded, one written), the
/// read-ahead, the driver's pool and statements. It grew by 180 to 196 MiB.
const WIDE_BACKLOG_PEAK_MIB: u64 = 300;
