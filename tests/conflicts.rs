//! Conflicts through real processes: a change that finds the destination
//! other than the source had it fails the task by default, naming the
//! table, the key and both rows; with a policy, each is settled as the
//! table's policy says, on both the bulk and the one-by-one apply paths,
//! counted exactly once across a worker's death, and recorded for
//! `dtsctl task conflicts`.

use dts_tests::converge::wait_task_past;
use dts_tests::fixtures::sync_task;
use dts_tests::{wait_for, MariaDb, TestCluster};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

// Text in latin1 throughout: compared, settled and written as its bytes.
const SHOP: &str = "CREATE DATABASE shop; USE shop; \
    CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20) CHARACTER SET latin1, n INT NOT NULL); \
    INSERT INTO items SELECT seq, 'séed', 0 FROM seq_1_to_20; \
    CREATE TABLE kept (id INT PRIMARY KEY, v VARCHAR(20) CHARACTER SET latin1); \
    INSERT INTO kept SELECT seq, 'séed' FROM seq_1_to_5; \
    CREATE TABLE people (email VARCHAR(64) PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin1, \
      UNIQUE KEY by_name (name)); \
    INSERT INTO people VALUES ('a@e', 'a'), ('b@e', 'b'), ('c@e', 'c')";

/// `dtsctl -o json task conflicts ID`.
fn conflicts(cluster: &TestCluster, task: &str) -> anyhow::Result<serde_json::Value> {
    let out = cluster.dtsctl(&["-o", "json", "task", "conflicts", task])?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test]
async fn a_conflict_fails_the_task_by_default_naming_table_key_and_both_rows() -> anyhow::Result<()>
{
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source.exec(SHOP).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "strict",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"shop\"\ntables = [\"items\"]",
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    destination
        .exec("DELETE FROM shop.items WHERE id = 5")
        .await?;
    source
        .exec(
            "BEGIN; UPDATE shop.items SET v = 'first' WHERE id = 4; \
             UPDATE shop.items SET v = 'lost?', n = 7 WHERE id = 5; COMMIT",
        )
        .await?;
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    for part in [
        "conflict on `shop`.`items` at key {\"id\":5}",
        "an update found no row",
        "\"v\":\"lost?\"",
        "destination: no row",
        "conflicts.policy is \"fail\"",
    ] {
        assert!(
            failed.last_error.contains(part),
            "the error does not say {part:?}: {}",
            failed.last_error
        );
    }
    // The source transaction stopped whole: its first row is not applied.
    let four = destination
        .query_value("SELECT v FROM shop.items WHERE id = 4")
        .await?;
    assert_eq!(four.as_deref(), Some("séed"));
    Ok(())
}

#[tokio::test]
async fn planted_differences_are_settled_per_table_and_counted_once_across_a_worker_kill(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source.exec(SHOP).await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "settle",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"shop\"\n\
         [conflicts]\npolicy = \"overwrite\"\ncompare_rows = true\n\
         [[conflicts.tables]]\ndatabase = \"shop\"\ntable = \"kept\"\npolicy = \"ignore\"",
        2,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    // Behind the task's back: a row changed, rows deleted, a row added.
    destination
        .exec(
            "USE shop; UPDATE items SET v = 'planted' WHERE id = 11; \
             DELETE FROM items WHERE id IN (10, 12); INSERT INTO items VALUES (21, 'planted', 0); \
             UPDATE kept SET v = 'planted' WHERE id = 1; \
             INSERT INTO people VALUES ('x@e', 'planted-x'); DELETE FROM people WHERE email = 'b@e'; \
             UPDATE people SET name = 'planted-c' WHERE email = 'c@e'",
        )
        .await?;
    source
        .exec(
            "USE shop; BEGIN; UPDATE items SET v = 'source', n = 1 WHERE id IN (1, 10, 11); \
             DELETE FROM items WHERE id = 12; INSERT INTO items VALUES (21, 'source', 1); COMMIT; \
             UPDATE kept SET v = 'source' WHERE id = 1; \
             BEGIN; INSERT INTO people VALUES ('x@e', 'source-x'); \
             UPDATE people SET name = 'source-b' WHERE email = 'b@e'; \
             UPDATE people SET name = 'source-c' WHERE email = 'c@e'; \
             UPDATE people SET name = 'source-à' WHERE email = 'a@e'; COMMIT",
        )
        .await?;
    wait_task_past(&cluster, &task, &source).await?;
    // Overwritten where the policy is overwrite, on the bulk path (items)
    // and the one-by-one path (people, with a second unique key) alike.
    for table in ["items", "people"] {
        assert_eq!(
            source.checksum("shop", table).await?,
            destination.checksum("shop", table).await?,
            "shop.{table} differs"
        );
    }
    let kept = destination
        .query_value("SELECT v FROM shop.kept WHERE id = 1")
        .await?;
    assert_eq!(kept.as_deref(), Some("planted"), "ignore kept the row");

    let expected = serde_json::json!({
        "delete_missing": { "applied": 1 },
        "insert_exists": { "applied": 2 },
        "update_differs": { "applied": 2, "kept": 1 },
        "update_missing": { "applied": 2 },
    });
    let counted = wait_for("the conflicts to be reported", TIMEOUT, || async {
        let summary = conflicts(&cluster, &task)?;
        Ok((summary["total"] == 8).then_some(summary))
    })
    .await?;
    assert_eq!(counted["counts"], expected, "{counted:#}");
    let recent = counted["recent"].as_array().cloned().unwrap_or_default();
    let kept_record = recent
        .iter()
        .find(|r| r["table"] == "shop.kept")
        .ok_or_else(|| anyhow::anyhow!("no record of shop.kept: {counted:#}"))?;
    assert_eq!(kept_record["kind"], "update_differs");
    assert_eq!(kept_record["resolution"], "kept");
    assert_eq!(kept_record["key"]["id"], 1);
    assert_eq!(kept_record["incoming"]["v"], "source");
    assert_eq!(kept_record["found"]["v"], "planted");
    let table = cluster.dtsctl(&["task", "conflicts", &task])?;
    let table = String::from_utf8_lossy(&table.stdout);
    println!("{table}");
    assert!(
        table.starts_with("8 conflicts: delete_missing: 1 applied;")
            && table.contains("update_differs   shop.kept                kept      {\"id\":1}"),
        "dtsctl task conflicts: {table}"
    );
    let shown = cluster.dtsctl(&["task", "show", &task])?;
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("conflicts       8 (delete_missing: 1 applied;"),
        "task show does not count them: {shown}"
    );

    // A new worker reads the counts back from the meta schema; nothing is
    // settled or counted twice.
    let owner = cluster.task(&task).await?.worker_id;
    cluster.worker(&owner)?.process.kill();
    cluster.add_worker(2)?;
    cluster.wait_for_task_moved(&task, &owner, TIMEOUT).await?;
    source
        .exec("UPDATE shop.items SET n = 2 WHERE id = 2")
        .await?;
    wait_task_past(&cluster, &task, &source).await?;
    let after = conflicts(&cluster, &task)?;
    assert_eq!(after["total"], 8, "{after:#}");
    assert_eq!(after["counts"], expected);
    let recorded = destination
        .query_value(&format!(
            "SELECT COUNT(*) FROM dts_meta.conflicts WHERE task_id = '{task}'"
        ))
        .await?;
    assert_eq!(recorded.as_deref(), Some("8"));
    assert_eq!(
        source.checksum("shop", "items").await?,
        destination.checksum("shop", "items").await?
    );
    Ok(())
}
