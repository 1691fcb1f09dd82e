//! Prechecks as a report, through real servers and processes: every item
//! with its status and reason, all failures at once, alerts that block the
//! start until acknowledged in the task file or by `task start
//! --ignore-alert`, and `dtsctl task precheck -f` checking a file without
//! writing anything.

use dts_tests::fixtures::sync_task;
use dts_tests::{wait_for, MariaDb, TestCluster};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn write(cluster: &TestCluster, name: &str, text: &str) -> anyhow::Result<String> {
    let path = cluster.dir().join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

/// A report's items by name: status and detail.
type Items = BTreeMap<String, (String, String)>;

/// `dtsctl -o json task precheck -f FILE`: whether it passed, and each
/// item's status and detail by name.
fn precheck_file(cluster: &TestCluster, path: &str) -> anyhow::Result<(bool, Items)> {
    let output = cluster.dtsctl(&["-o", "json", "task", "precheck", "-f", path])?;
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        anyhow::anyhow!(
            "no report ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let items = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            (
                item["name"].as_str().unwrap_or_default().to_string(),
                (
                    item["status"].as_str().unwrap_or_default().to_string(),
                    item["detail"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect();
    Ok((output.status.success(), items))
}

fn status<'a>(items: &'a Items, name: &str) -> &'a str {
    items.get(name).map_or("(missing)", |(status, _)| status)
}

fn detail<'a>(items: &'a Items, name: &str) -> &'a str {
    items.get(name).map_or("", |(_, detail)| detail)
}

#[tokio::test]
async fn a_short_binlog_retention_is_an_alert_that_blocks_the_start_until_acknowledged(
) -> anyhow::Result<()> {
    let source = MariaDb::start_with(1, &["--expire-logs-days=1"]).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v INT); \
             INSERT INTO t SELECT seq, seq FROM seq_1_to_100",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "retained",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"shop\"",
        1,
    );
    let path = write(&cluster, "retained.toml", &spec)?;

    // The report, from dtsctl, before anything exists.
    let (passed, items) = precheck_file(&cluster, &path)?;
    assert!(!passed, "an open alert blocks: {items:?}");
    assert_eq!(status(&items, "binlog_retention"), "alert", "{items:?}");
    assert!(
        detail(&items, "binlog_retention").contains("keeps binlogs 24.0 hours")
            && detail(&items, "binlog_retention").contains("at least 7 days"),
        "{items:?}"
    );
    for name in [
        "source_connection",
        "destination_connection",
        "binlog",
        "log_slave_updates",
        "destination_version",
        "objects",
        "target_tables",
        "cascading_foreign_keys",
        "conflicting_tables",
        "index_prefixes",
        "outside_dependencies",
        "missing_definers",
    ] {
        assert_eq!(status(&items, name), "pass", "{name}: {items:?}");
    }
    let shown = cluster.dtsctl(&["task", "precheck", "-f", &path])?;
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(
        table.contains("binlog_retention") && table.contains("ALERT"),
        "{table}"
    );
    assert!(
        String::from_utf8_lossy(&shown.stderr).contains("1 alerts not acknowledged"),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let untouched = destination
        .query_value("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ('shop', 'dts_meta')")
        .await?;
    assert_eq!(untouched.as_deref(), Some("0"), "a precheck writes nothing");

    // Started, it stops at the alert, saying how to acknowledge it.
    let task = cluster.create_task(&spec, true).await?.id;
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    assert!(
        failed
            .last_error
            .contains("precheck alerts not acknowledged: binlog_retention")
            && failed
                .last_error
                .contains("--ignore-alert binlog_retention"),
        "{}",
        failed.last_error
    );
    let last = cluster.dtsctl(&["task", "precheck", &task])?;
    assert!(
        String::from_utf8_lossy(&last.stdout).contains("ALERT"),
        "{}",
        String::from_utf8_lossy(&last.stdout)
    );
    let copied = destination
        .query_value("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'")
        .await?;
    assert_eq!(copied.as_deref(), Some("0"), "nothing is copied");

    // Not an alert's name: refused, naming the field.
    let wrong = cluster.dtsctl(&["task", "start", &task, "--ignore-alert", "retention"])?;
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("ignore_alerts[0]"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // Acknowledged: it starts and copies.
    let started =
        cluster.dtsctl(&["task", "start", &task, "--ignore-alert", "binlog_retention"])?;
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    let rows = destination
        .query_value("SELECT COUNT(*) FROM shop.t")
        .await?;
    assert_eq!(rows.as_deref(), Some("100"));
    let info = cluster.task(&task).await?;
    assert!(
        info.spec_json.contains("binlog_retention"),
        "the acknowledgement is kept in the task: {}",
        info.spec_json
    );

    // The same acknowledgement in the task file lets a precheck pass.
    let acknowledged = format!("ignore_alerts = [\"binlog_retention\"]\n{spec}")
        .replace("\"retained\"", "\"retained-2\"")
        .replace("database = \"shop\"", "database = \"shop\"\nto = \"shop2\"");
    let path = write(&cluster, "acknowledged.toml", &acknowledged)?;
    let (passed, items) = precheck_file(&cluster, &path)?;
    assert!(passed, "{items:?}");
    Ok(())
}

#[tokio::test]
async fn every_failed_item_and_alert_is_reported_at_once() -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(&format!(
            "CREATE DATABASE shop; CREATE DATABASE crm; USE shop; \
             CREATE TABLE parent (id INT PRIMARY KEY); \
             CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, note VARCHAR(300) CHARACTER SET utf8mb4, \
               KEY note_prefix (note(200)), \
               CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE); \
             CREATE TABLE crm.customers (id INT PRIMARY KEY); \
             CREATE DEFINER = 'ghost'@'%' VIEW shop.customer_ids AS SELECT id FROM crm.customers; \
             CREATE USER 'reader'@'%'; GRANT SELECT ON *.* TO 'reader'@'%'; \
             CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root'",
            destination.port
        ))
        .await?;
    destination
        .exec("CREATE DATABASE shop; CREATE TABLE shop.parent (id INT PRIMARY KEY)")
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "everything-wrong",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"shop\"",
        1,
    );
    let path = write(&cluster, "wrong.toml", &spec)?;
    let (passed, items) = precheck_file(&cluster, &path)?;
    assert!(!passed);
    let table = cluster.dtsctl(&["task", "precheck", "-f", &path])?;
    println!("{}", String::from_utf8_lossy(&table.stdout));
    let expected = [
        ("log_slave_updates", "fail", "log_slave_updates"),
        ("cascading_foreign_keys", "fail", "child_parent"),
        (
            "conflicting_tables",
            "fail",
            "`shop`.`parent` already exists",
        ),
        (
            "index_prefixes",
            "alert",
            "note_prefix(note(200)) = 800 bytes",
        ),
        (
            "outside_dependencies",
            "alert",
            "`shop`.`customer_ids` uses crm",
        ),
        ("missing_definers", "alert", "ghost@%"),
        ("binlog", "pass", ""),
        ("destination_version", "pass", "MariaDB"),
    ];
    for (name, want, text) in expected {
        assert_eq!(status(&items, name), want, "{name}: {items:?}");
        assert!(detail(&items, name).contains(text), "{name}: {items:?}");
    }

    // A user without the right to read the binlog's position: the binlog
    // item fails, with the privilege named.
    let limited = spec.replacen("user = \"root\"", "user = \"reader\"", 1);
    let path = write(&cluster, "limited.toml", &limited)?;
    let (_, items) = precheck_file(&cluster, &path)?;
    assert_eq!(status(&items, "binlog"), "fail", "{items:?}");
    assert!(
        detail(&items, "binlog").contains("lacks a privilege"),
        "{items:?}"
    );

    // At the start, every failure is in the task's error at once.
    let task = cluster.create_task(&spec, true).await?.id;
    let failed = wait_for("the task to fail its prechecks", TIMEOUT, || async {
        let info = cluster.task(&task).await?;
        Ok((info.status == "failed").then_some(info))
    })
    .await?;
    for text in [
        "3 prechecks failed",
        "log_slave_updates:",
        "cascading_foreign_keys:",
        "conflicting_tables:",
    ] {
        assert!(failed.last_error.contains(text), "{}", failed.last_error);
    }
    Ok(())
}
