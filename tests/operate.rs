//! Watching a cluster from outside, through real processes: every
//! coordinator and worker serves Prometheus metrics, the metrics the
//! shipped alert rules and dashboard use are all live, and the coordinators
//! answer gRPC health checks and server reflection.

use dts_tests::cluster::scrape_metrics;
use dts_tests::fixtures::sync_task;
use dts_tests::scenario::IncrementalSync;
use dts_tests::{wait_for, MariaDb, TestCluster};
use std::collections::BTreeSet;
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Every `dts_*` name in `text`.
fn dts_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("dts_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The metric names a scrape serves (the first word of each sample line).
fn served(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn monitoring_file(name: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/monitoring")
        .join(name);
    Ok(std::fs::read_to_string(path)?)
}

#[tokio::test]
async fn metrics_health_and_reflection_are_served_and_the_alert_rules_name_live_metrics(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
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
        .metrics()
        .start()
        .await?;
    let spec = sync_task(
        "watched",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"shop\"",
        1,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    // A change applied gives the task a latency to report.
    source.exec("UPDATE shop.t SET v = 0 WHERE id = 1").await?;
    let coordinator_port = cluster.coordinators[0]
        .metrics_port
        .ok_or_else(|| anyhow::anyhow!("the coordinator serves no metrics"))?;
    let worker_port = cluster.workers[0]
        .metrics_port
        .ok_or_else(|| anyhow::anyhow!("the worker serves no metrics"))?;
    let running = format!("dts_task_running{{task_id=\"{task}\",name=\"watched\"}} 1");
    let last = std::sync::Mutex::new(String::new());
    let coordinator = wait_for("the task on the coordinator's metrics", TIMEOUT, || async {
        let scrape = scrape_metrics(coordinator_port).await?;
        let found = scrape.contains(&running) && scrape.contains("dts_task_latency_seconds");
        *last.lock().unwrap_or_else(|p| p.into_inner()) = scrape.clone();
        Ok(found.then_some(scrape))
    })
    .await
    .map_err(|e| {
        let last = last.lock().map(|l| l.clone()).unwrap_or_default();
        anyhow::anyhow!("{e:#}; it served:\n{last}")
    })?;
    let worker_running = format!("dts_worker_task_running{{task_id=\"{task}\"}} 1");
    let worker = wait_for("the task on the worker's metrics", TIMEOUT, || async {
        let scrape = scrape_metrics(worker_port).await?;
        Ok(scrape.contains(&worker_running).then_some(scrape))
    })
    .await?;
    assert!(
        coordinator.contains("dts_raft_is_leader 1"),
        "{coordinator}"
    );
    assert!(
        coordinator.contains("dts_workers{state=\"online\"} 1"),
        "{coordinator}"
    );
    assert!(coordinator.contains("dts_du_total 2"), "{coordinator}");
    assert!(coordinator.contains("dts_du_used 1"), "{coordinator}");

    // What the shipped rules and dashboard ask for is there.
    let live: BTreeSet<String> = served(&coordinator)
        .union(&served(&worker))
        .cloned()
        .collect();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&monitoring_file("alerts.yml")?)?;
    let mut used = BTreeSet::new();
    for group in rules["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            let expr = rule["expr"].as_str().unwrap_or_default();
            assert!(!expr.is_empty(), "a rule without expr: {rule:?}");
            used.extend(dts_names(expr));
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(&monitoring_file("dashboard.json")?)?;
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            used.extend(dts_names(target["expr"].as_str().unwrap_or_default()));
        }
    }
    assert!(used.len() >= 10, "too few names found: {used:?}");
    let missing: Vec<&String> = used.difference(&live).collect();
    assert!(
        missing.is_empty(),
        "alert rules or dashboard use metrics nobody serves: {missing:?}\n{live:?}"
    );

    // gRPC health and reflection on the coordinator.
    let channel = cluster.channel_as(&cluster.coordinators[0].address(), "admin")?;
    for service in ["", "dts.v1.Admin", "dts.v1.WorkerControl"] {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await?
        .into_inner();
    let answer = responses
        .message()
        .await?
        .and_then(|r| r.message_response)
        .ok_or_else(|| anyhow::anyhow!("no reflection answer"))?;
    let MessageResponse::ListServicesResponse(list) = answer else {
        anyhow::bail!("reflection answered {answer:?}");
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "dts.v1.Admin",
        "dts.v1.WorkerControl",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "reflection lists {services:?}"
        );
    }
    Ok(())
}

/// An idle source sends replication heartbeats to its reader: the task
/// knows it is caught up, and its latency stays true (near zero) long after
/// the last change, without writing anything to the source.
#[tokio::test]
async fn an_idle_source_keeps_a_true_latency_without_being_written() -> anyhow::Result<()> {
    // Every part is held: a dropped MariaDb stops its server.
    let IncrementalSync {
        source,
        destination: _destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v INT); \
         INSERT INTO t VALUES (1, 1)",
        "shop",
        1,
    )
    .await?;
    source.exec("UPDATE shop.t SET v = 2 WHERE id = 1").await?;
    let changed = std::time::Instant::now();
    let end = source.binlog_end().await?;
    let latency = std::sync::Mutex::new(None);
    wait_for(
        "a latency under 3 s with the last change over 6 s old",
        TIMEOUT,
        || async {
            let progress = cluster.progress(&task).await?;
            let reported = progress["latency_ms"].as_i64();
            *latency.lock().unwrap_or_else(|p| p.into_inner()) = reported;
            let idle_long = changed.elapsed() > Duration::from_secs(6);
            Ok((idle_long && reported.is_some_and(|ms| ms < 3000)).then_some(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}; last latency {:?}", latency.lock().ok()))?;
    assert_eq!(
        source.binlog_end().await?,
        end,
        "dts wrote to the idle source"
    );
    Ok(())
}

/// A task with nothing to apply while its source moves on to new binlog
/// files checkpoints in the newest one (once per file, at the source's
/// heartbeat), so purging the files before it does not strand the task.
#[tokio::test]
async fn an_idle_task_follows_its_source_into_new_binlog_files_and_survives_a_purge(
) -> anyhow::Result<()> {
    let IncrementalSync {
        source,
        destination,
        cluster,
        task,
    } = IncrementalSync::start(
        "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v INT); \
         INSERT INTO t VALUES (1, 1); CREATE DATABASE other; CREATE TABLE other.x (id INT)",
        "shop",
        1,
    )
    .await?;
    source.exec("UPDATE shop.t SET v = 2 WHERE id = 1").await?;
    dts_tests::converge::wait_task_past(&cluster, &task, &source).await?;
    // The source moves on, with nothing for the task.
    source
        .exec("FLUSH BINARY LOGS; INSERT INTO other.x VALUES (1); FLUSH BINARY LOGS; INSERT INTO other.x VALUES (2)")
        .await?;
    let (file, _) = source.binlog_end().await?;
    wait_for(
        &format!("the task's checkpoint in {file}"),
        TIMEOUT,
        || async {
            let at = destination
                .query_value(&format!(
                    "SELECT COUNT(*) FROM dts_meta.checkpoints WHERE task_id = '{task}' \
                 AND position LIKE '%\"{file}\"%'"
                ))
                .await?;
            Ok((at.as_deref() == Some("1")).then_some(()))
        },
    )
    .await?;
    source
        .exec(&format!("PURGE BINARY LOGS TO '{file}'"))
        .await?;
    // Restarted from its checkpoint, it reads on from the newest file.
    cluster
        .control_task(&task, dts_proto::pb::TaskAction::Pause)
        .await?;
    cluster
        .control_task(&task, dts_proto::pb::TaskAction::Resume)
        .await?;
    cluster.wait_for_task_running(&task, TIMEOUT).await?;
    source.exec("UPDATE shop.t SET v = 3 WHERE id = 1").await?;
    dts_tests::converge::wait_task_past(&cluster, &task, &source).await?;
    assert_eq!(
        destination
            .query_value("SELECT v FROM shop.t WHERE id = 1")
            .await?
            .as_deref(),
        Some("3")
    );
    let info = cluster.task(&task).await?;
    assert_eq!(info.status, "running", "{}", info.last_error);
    Ok(())
}

/// `[alerts]` with a webhook: a task that fails is notified once, and its
/// recovery once, though the leader that sent the first notification dies
/// in between (the delivery is in the replicated state). The webhook's
/// secret path is not shown by `task show`.
#[tokio::test]
async fn a_failure_is_alerted_once_and_its_recovery_once_across_a_leader_change(
) -> anyhow::Result<()> {
    let webhook = dts_tests::webhook::Webhook::start().await?;
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(
            "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v INT); \
             INSERT INTO t SELECT seq, seq FROM seq_1_to_10",
        )
        .await?;
    let mut cluster = TestCluster::builder()
        .coordinators(3)
        .worker(2)
        .start()
        .await?;
    let spec = format!(
        "{}\n[alerts]\nwebhook = \"{}\"\nlatency_seconds = 3600\n",
        sync_task(
            "alerted",
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            "[[objects]]\ndatabase = \"shop\"",
            1,
        ),
        webhook.url
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    // A conflict fails the task (the default policy).
    destination.exec("DELETE FROM shop.t WHERE id = 5").await?;
    source.exec("UPDATE shop.t SET v = 50 WHERE id = 5").await?;
    cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    let fired = wait_for("the failure alert", TIMEOUT, || async {
        let received = webhook.received();
        Ok((!received.is_empty()).then_some(received))
    })
    .await?;
    assert_eq!(fired[0]["task_id"], task.as_str());
    assert_eq!(fired[0]["alert"], "failure");
    assert_eq!(fired[0]["state"], "firing");
    assert_eq!(fired[0]["incident"], 1);
    assert!(
        fired[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("an update found no row")),
        "{fired:?}"
    );
    // Its delivery is committed (else a new leader would send it again).
    let shown = wait_for("the delivery to be recorded", TIMEOUT, || async {
        let shown = cluster.task(&task).await?;
        let told = shown
            .active_alerts
            .iter()
            .any(|a| a.starts_with("failure (incident 1, notified)"));
        Ok(told.then_some(shown))
    })
    .await?;
    assert_eq!(shown.active_alerts.len(), 1, "{:?}", shown.active_alerts);
    assert!(
        !shown.spec_json.contains("secret-token"),
        "task show shows the webhook's path: {}",
        shown.spec_json
    );

    // The leader that delivered it dies.
    let leader = cluster.cluster_status().await?.leader_id;
    cluster.coordinator(leader)?.process.kill();
    wait_for("a new leader", TIMEOUT, || async {
        let status = cluster.cluster_status().await;
        Ok(status
            .ok()
            .filter(|s| s.leader_id != 0 && s.leader_id != leader)
            .map(|_| ()))
    })
    .await?;
    // Repaired, and started again: the incident closes.
    destination.exec("INSERT INTO shop.t VALUES (5, 5)").await?;
    cluster
        .control_task(&task, dts_proto::pb::TaskAction::Start)
        .await?;
    let both = wait_for("the recovery notice", TIMEOUT, || async {
        let received = webhook.received();
        Ok((received.len() >= 2).then_some(received))
    })
    .await?;
    assert_eq!(both[1]["alert"], "failure");
    assert_eq!(both[1]["state"], "resolved");
    assert_eq!(both[1]["incident"], 1);
    // Nothing more comes: a change goes through, and the count stays.
    source.exec("UPDATE shop.t SET v = 60 WHERE id = 6").await?;
    dts_tests::converge::wait_task_past(&cluster, &task, &source).await?;
    assert_eq!(webhook.received().len(), 2, "{:?}", webhook.received());
    assert!(cluster.task(&task).await?.active_alerts.is_empty());
    Ok(())
}
