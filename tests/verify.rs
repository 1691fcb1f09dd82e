//! Data verification through real processes: a pass compares source and
//! destination through the task's route (a renamed table, renamed and left
//! out columns, a WHERE filter), finds exactly the differences planted
//! behind the task's back, prints the statements that repair them, reports
//! nothing on a healthy task under load, and goes on from where it was when
//! its worker is killed.

use dts_tests::compare::assert_routed;
use dts_tests::converge::wait_caught_up;
use dts_tests::fixtures::sync_task;
use dts_tests::load::{Load, LOAD_SCHEMA};
use dts_tests::{wait_for, MariaDb, TestCluster};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The task's verification summary, as its last progress report has it.
async fn verification(cluster: &TestCluster, task: &str) -> anyhow::Result<Value> {
    Ok(cluster.progress(task).await?["verify"].clone())
}

/// Waits until pass `pass` of the task is done; returns its summary.
async fn pass_done(cluster: &TestCluster, task: &str, pass: u64) -> anyhow::Result<Value> {
    wait_for(
        &format!("verification pass {pass} done"),
        TIMEOUT,
        || async {
            let summary = verification(cluster, task).await?;
            let done = summary["pass"].as_u64() == Some(pass) && summary["status"] == "done";
            Ok(done.then_some(summary))
        },
    )
    .await
}

fn dtsctl(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<String> {
    let output = cluster.dtsctl(args)?;
    anyhow::ensure!(
        output.status.success(),
        "dtsctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

fn count(summary: &Value, field: &str) -> u64 {
    summary[field].as_u64().unwrap_or(u64::MAX)
}

const SHOP: &str = "CREATE DATABASE shop; USE shop;
CREATE TABLE orders (id INT PRIMARY KEY, region VARCHAR(8) NOT NULL, amount DECIMAL(10,2), note VARCHAR(40));
INSERT INTO orders SELECT seq, IF(seq % 3 = 0, 'us', 'eu'), seq / 4, CONCAT('note ', seq) FROM seq_1_to_25000;
CREATE TABLE items (sku VARCHAR(20) CHARACTER SET latin1 PRIMARY KEY, title TEXT CHARACTER SET latin1,
  made DATETIME(3), label ENUM('a','b','c'));
INSERT INTO items SELECT CONCAT('sku-', seq), CONCAT(REPEAT('x', seq % 50), ' café'), '2024-01-02 03:04:05.678', 1 + seq % 3 FROM seq_1_to_3000;";

const SHOP_OBJECTS: &str = r#"[[objects]]
database = "shop"
to = "shop_eu"
tables = [
  { name = "orders", to = "orders_eu", where = "region = 'eu'", exclude_columns = ["note"], rename_columns = { amount = "total" } },
  "items",
]"#;

#[tokio::test]
async fn planted_differences_are_found_through_the_route_and_the_fix_repairs_them(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source.exec(SHOP).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = format!(
        "verify = \"full\"\n{}",
        sync_task(
            "verified",
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            SHOP_OBJECTS,
            2,
        )
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;

    // The task's own pass, once the copy is in: everything in step.
    let first = pass_done(&cluster, &task, 1).await?;
    let eu_orders = 25_000 - 25_000 / 3;
    assert_eq!(count(&first, "rows_compared"), eu_orders + 3000, "{first}");
    assert_eq!(count(&first, "differences"), 0, "{first}");
    assert_eq!(count(&first, "unsettled"), 0, "{first}");
    assert_eq!(count(&first, "tables_done"), 2, "{first}");

    // Behind the task's back: a changed row, a deleted one, one the filter
    // leaves out (id 3 is a 'us' order), and a changed row in the
    // unfiltered table. A change through the source still applies.
    destination
        .exec(
            "UPDATE shop_eu.orders_eu SET total = total + 1 WHERE id = 10; \
             DELETE FROM shop_eu.orders_eu WHERE id = 20002; \
             INSERT INTO shop_eu.orders_eu (id, region, total) VALUES (3, 'eu', 1.00); \
             UPDATE shop_eu.items SET label = 'c', title = 'changed' WHERE sku = 'sku-7'",
        )
        .await?;
    source
        .exec(
            "UPDATE shop.orders SET amount = 99 WHERE id = 11; \
             UPDATE shop.items SET title = 'naïve' WHERE sku = 'sku-9'",
        )
        .await?;
    let requested = dtsctl(&cluster, &["task", "verify", &task, "--run"])?;
    assert!(requested.contains("verification pass 1"), "{requested}");
    let second = pass_done(&cluster, &task, 2).await?;
    assert_eq!(count(&second, "differences"), 4, "{second}");
    assert_eq!(count(&second, "unsettled"), 0, "{second}");
    let mut found: Vec<(String, String, String)> = second["found"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["table"].as_str().unwrap_or_default().to_string(),
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["key"].to_string(),
            )
        })
        .collect();
    found.sort();
    let expected =
        |table: &str, kind: &str, key: &str| (table.to_string(), kind.to_string(), key.to_string());
    assert_eq!(
        found,
        vec![
            expected("shop_eu.items", "differs", r#"{"sku":"sku-7"}"#),
            expected("shop_eu.orders_eu", "differs", r#"{"id":10}"#),
            expected("shop_eu.orders_eu", "extra", r#"{"id":3}"#),
            expected("shop_eu.orders_eu", "missing", r#"{"id":20002}"#),
        ],
        "{second}"
    );
    let changed = second["found"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["key"]["id"] == 10)
        .cloned()
        .unwrap_or_default();
    assert_eq!(changed["source"]["total"], "2.50", "{changed}");
    assert_eq!(changed["destination"]["total"], "3.50", "{changed}");
    assert!(changed["source"].get("note").is_none(), "{changed}");
    // Latin-1 text, read as its bytes on both sides, shown as text.
    let item = second["found"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["key"]["sku"] == "sku-7")
        .cloned()
        .unwrap_or_default();
    assert_eq!(item["source"]["title"], "xxxxxxx café", "{item}");
    assert_eq!(item["destination"]["title"], "changed", "{item}");

    // What a user reads, then the repair it prints.
    let shown = dtsctl(&cluster, &["task", "verify", &task])?;
    assert!(shown.contains("4 differences"), "{shown}");
    assert!(shown.contains("missing  shop_eu.orders_eu"), "{shown}");
    let fix = dtsctl(&cluster, &["task", "verify", &task, "--fix"])?;
    println!("{shown}{fix}");
    assert_eq!(fix.matches("REPLACE INTO").count(), 3, "{fix}");
    assert_eq!(fix.matches("DELETE FROM").count(), 1, "{fix}");
    destination.exec(&fix).await?;
    dtsctl(&cluster, &["task", "verify", &task, "--run"])?;
    let third = pass_done(&cluster, &task, 3).await?;
    assert_eq!(count(&third, "differences"), 0, "{third}");
    assert_eq!(count(&third, "rows_compared"), eu_orders + 3000, "{third}");
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;
    assert_routed(&source, &destination, &spec).await?;
    Ok(())
}

#[tokio::test]
async fn a_pass_under_load_reports_nothing_and_goes_on_after_its_worker_is_killed(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source.exec(LOAD_SCHEMA).await?;
    source
        .exec(
            "USE load_db; INSERT INTO items SELECT seq, seq % 13, CONCAT('seed-', seq), seq / 7, \
             NOW(6) FROM seq_1_to_150000",
        )
        .await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
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
        "verified-load",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        objects,
        1,
    );
    let load = Load::start(&source, 1).await?;
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    load.wait_for_more(100, TIMEOUT).await?;
    // Tables are verified in name order: with `items` locked on the
    // source, the pass compares `counters`, saves, and waits at `items`.
    // (The load waits too, for as long as the lock is held.)
    let mut lock = source.conn().await?;
    lock.query_drop("LOCK TABLES load_db.items WRITE").await?;
    dtsctl(&cluster, &["task", "verify", &task, "--run"])?;
    let saved = "SELECT JSON_VALUE(state, '$.tables_done[0]') FROM dts_meta.verify_state WHERE kind = 'full'";
    wait_for("the first table verified", TIMEOUT, || async {
        let done = destination.query_value(saved).await.ok().flatten();
        Ok((done.as_deref() == Some("load_db.counters")).then_some(()))
    })
    .await?;
    let first = cluster.task(&task).await?;
    cluster.worker(&first.worker_id)?.process.kill();
    lock.query_drop("UNLOCK TABLES").await?;
    cluster.add_worker(1)?;
    cluster
        .wait_for_task_moved(&task, &first.worker_id, TIMEOUT)
        .await?;
    let resumed = pass_done(&cluster, &task, 1).await?;
    assert_eq!(count(&resumed, "resumed"), 1, "{resumed}");
    assert_eq!(count(&resumed, "differences"), 0, "{resumed}");
    assert_eq!(count(&resumed, "tables_done"), 2, "{resumed}");

    // Another pass, asked for while the load goes on.
    load.wait_for_more(100, TIMEOUT).await?;
    dtsctl(&cluster, &["task", "verify", &task, "--run"])?;
    let loaded = pass_done(&cluster, &task, 2).await?;
    assert_eq!(count(&loaded, "differences"), 0, "{loaded}");
    assert_eq!(count(&loaded, "resumed"), 0, "{loaded}");
    let committed = load.stop().await?;
    println!("{committed} source transactions during verification: {loaded}");
    wait_caught_up(&source, &destination, 1, TIMEOUT).await?;
    assert_routed(&source, &destination, &spec).await?;
    Ok(())
}

#[tokio::test]
async fn incremental_verification_catches_a_destination_trigger_changing_applied_rows(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE bank; USE bank; \
             CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(20), balance INT NOT NULL); \
             INSERT INTO accounts SELECT seq, CONCAT('owner ', seq), 100 FROM seq_1_to_1000",
        )
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = format!(
        "verify = \"incremental\"\n{}",
        sync_task(
            "verified-changes",
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            "[[objects]]\ndatabase = \"bank\"\nto = \"bank_copy\"\ntables = [{ name = \"accounts\", rename_columns = { balance = \"amount\" } }]",
            2,
        )
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    // A trigger left on the destination changes what dts writes to two
    // rows (an update of account 7, the insert of account 5001): a
    // divergence nothing else reports.
    destination
        .exec(
            "USE bank_copy; \
             CREATE TRIGGER skim_update BEFORE UPDATE ON accounts FOR EACH ROW \
               IF NEW.id = 7 THEN SET NEW.amount = NEW.amount - 1; END IF; \
             CREATE TRIGGER skim_insert BEFORE INSERT ON accounts FOR EACH ROW \
               IF NEW.id = 5001 THEN SET NEW.amount = NEW.amount - 1; END IF",
        )
        .await?;
    let mut conn = source.conn().await?;
    for round in 0..20 {
        conn.query_drop(format!(
            "UPDATE bank.accounts SET balance = balance + 1 WHERE id % 20 = {round}"
        ))
        .await?;
        conn.query_drop(format!(
            "INSERT INTO bank.accounts VALUES ({}, 'new', 1)",
            5000 + round + 1
        ))
        .await?;
    }
    let checked = 1000 + 20;
    let summary = wait_for("the changed rows compared", TIMEOUT, || async {
        let summary = verification(&cluster, &task).await?;
        let part = &summary["incremental"];
        Ok((part["checked"].as_u64().unwrap_or(0) >= checked).then_some(summary))
    })
    .await?;
    let part = &summary["incremental"];
    assert_eq!(count(part, "differences"), 2, "{summary}");
    assert_eq!(count(part, "unsettled"), 0, "{summary}");
    assert_eq!(count(&summary, "pass"), 0, "no pass ran: {summary}");
    let mut keys: Vec<String> = part["found"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| format!("{} {} {}", d["table"], d["kind"], d["key"]))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            r#""bank_copy.accounts" "differs" {"id":5001}"#,
            r#""bank_copy.accounts" "differs" {"id":7}"#,
        ],
        "{summary}"
    );
    let shown = dtsctl(&cluster, &["task", "verify", &task])?;
    assert!(
        shown.contains("incremental: ") && shown.contains(", 2 differences"),
        "{shown}"
    );
    let fix = dtsctl(&cluster, &["task", "verify", &task, "--fix"])?;
    assert_eq!(
        fix.matches("REPLACE INTO `bank_copy`.`accounts`").count(),
        2,
        "{fix}"
    );
    Ok(())
}
