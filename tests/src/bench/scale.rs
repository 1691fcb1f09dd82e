//! Scenario 5: coordinator scale. A load generator poses as many workers
//! (register, heartbeat every 500 ms) and reports the progress of every task
//! assigned to them once a second, against a 3-node coordinator cluster.
//! Each simulated worker has a connection of its own, as a real one does, so
//! with TLS every one pays its handshake and its encryption.

use super::report::Report;
use crate::fixtures::control_plane_task;
use crate::wait::wait_for;
use crate::TestCluster;
use dts_common::CoordinatorClient;
use dts_proto::pb;
use dts_proto::pb::worker_control_client::WorkerControlClient;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const SCENARIO: &str = "coordinator scale";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Mutual TLS, the default: the simulated workers hold a worker certificate.
    Tls,
    /// `--insecure`.
    Plaintext,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tls => "mTLS",
            Transport::Plaintext => "plaintext",
        })
    }
}

type Assignments = Arc<Mutex<HashMap<String, Vec<(String, u64)>>>>;

pub async fn run_scenario(
    workers: usize,
    tasks: usize,
    seconds: u64,
    transport: Transport,
    report: &mut Report,
) -> anyhow::Result<()> {
    println!("== {SCENARIO} ({transport}): {workers} simulated workers, {tasks} tasks, a report per task per second for {seconds} s");
    let mut builder = TestCluster::builder().coordinators(3);
    if transport == Transport::Plaintext {
        builder = builder.insecure();
    }
    let cluster = builder.start().await?;
    if let Some(pki) = cluster.pki() {
        pki.issue("simulated-worker", dts_common::tls::Role::Worker)?;
    }
    let clients = (0..workers)
        .map(|_| Ok(Arc::new(cluster.client_as("simulated-worker")?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let setup = format!("{workers} workers, {tasks} tasks, {transport}");
    let du = (tasks / workers + 1) as u32 * 2;
    let assignments: Assignments = Arc::new(Mutex::new(HashMap::new()));
    // Each simulated worker heartbeats as soon as it is registered, as a real
    // one does: registering all of them first (a Raft write each) can take
    // longer than a lease, and the first ones would be declared lost.
    let mut beats = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let request = pb::RegisterRequest {
            worker_id: format!("sim-{i}"),
            address: format!("sim-{i}"),
            du,
        };
        client
            .call(|ch: Channel| {
                let request = request.clone();
                async move { WorkerControlClient::new(ch).register(request).await }
            })
            .await?;
        beats.push(tokio::spawn(heartbeat(
            client.clone(),
            format!("sim-{i}"),
            assignments.clone(),
        )));
    }

    let created = Instant::now();
    let results: Vec<anyhow::Result<pb::TaskInfo>> = futures::stream::iter(0..tasks)
        .map(|i| {
            let cluster = &cluster;
            async move {
                cluster
                    .create_task(&control_plane_task(&format!("t{i}"), 1), true)
                    .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let create_secs = created.elapsed().as_secs_f64();
    wait_for(
        "every task assigned to a simulated worker",
        Duration::from_secs(300),
        || async {
            let n: usize = assignments
                .lock()
                .map(|a| a.values().map(Vec::len).sum())
                .unwrap_or(0);
            Ok((n == tasks).then_some(()))
        },
    )
    .await?;
    report.add(
        SCENARIO,
        &format!("task creation, {transport}"),
        "tasks created/s",
        tasks as f64 / create_secs,
        "tasks/s",
    );

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let reporters: Vec<_> = (0..workers)
        .map(|i| {
            let (client, assignments) = (clients[i].clone(), assignments.clone());
            let (ok, failed, latencies) = (ok.clone(), failed.clone(), latencies.clone());
            tokio::spawn(async move {
                let worker = format!("sim-{i}");
                let mut ticker = tokio::time::interval(Duration::from_secs(1));
                let mut round = 0u64;
                while Instant::now() < until {
                    ticker.tick().await;
                    round += 1;
                    let mine = assignments
                        .lock()
                        .map(|a| a.get(&worker).cloned().unwrap_or_default())
                        .unwrap_or_default();
                    let sends = mine.into_iter().map(|(task, epoch)| {
                        let request = progress(&worker, &task, epoch, round);
                        let client = client.clone();
                        async move {
                            let started = Instant::now();
                            let outcome = client
                                .call(|ch: Channel| {
                                    let request = request.clone();
                                    async move {
                                        WorkerControlClient::new(ch).report_progress(request).await
                                    }
                                })
                                .await;
                            (outcome.is_ok(), started.elapsed())
                        }
                    });
                    for (good, took) in futures::future::join_all(sends).await {
                        if good {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut l) = latencies.lock() {
                            l.push(took);
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    for r in reporters {
        r.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let status = cluster.cluster_status().await?;
    let lost = status
        .workers
        .iter()
        .filter(|w| w.state != "online")
        .count();
    for b in beats {
        b.abort();
    }
    if lost > 0 {
        // Why and when, from the coordinators' own words.
        let logs: String = cluster
            .coordinators
            .iter()
            .map(|c| c.process.log_text())
            .collect();
        let states: Vec<String> = status
            .workers
            .iter()
            .filter(|w| w.state != "online")
            .map(|w| format!("{}={}", w.id, w.state))
            .take(5)
            .collect();
        println!("  not online: {}", states.join(", "));
        let why: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("lease expired") || l.contains("ERROR") || l.contains("refused"))
            .take(12)
            .collect();
        println!(
            "  {lost} workers lost; the coordinators said:\n    {}",
            why.join("\n    ")
        );
    }
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies
            .get(i)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let rss_mib = cluster
        .coordinators
        .iter()
        .filter_map(|c| c.process.pid())
        .map(rss_kib)
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    let offered = tasks as f64;
    let keeps_up = failed == 0 && lost == 0 && ok as f64 / elapsed >= offered * 0.95;
    report.add_noted(
        SCENARIO,
        &setup,
        "reports accepted/s",
        ok as f64 / elapsed,
        "reports/s",
        &format!(
            "offered {offered:.0}/s; {failed} failed; {lost} workers lost; keeps up: {}",
            if keeps_up { "yes" } else { "no" }
        ),
    );
    report.add(SCENARIO, &setup, "report p50", at(0.5), "ms");
    report.add(SCENARIO, &setup, "report p99", at(0.99), "ms");
    report.add(SCENARIO, &setup, "largest coordinator RSS", rss_mib, "MiB");
    Ok(())
}

async fn heartbeat(client: Arc<CoordinatorClient>, worker: String, assignments: Assignments) {
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        ticker.tick().await;
        let running: Vec<pb::RunningTask> = assignments
            .lock()
            .map(|a| a.get(&worker).cloned().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .map(|(task_id, epoch)| pb::RunningTask {
                task_id,
                epoch,
                phase: "incremental".into(),
            })
            .collect();
        let request = pb::HeartbeatRequest {
            worker_id: worker.clone(),
            running,
        };
        let Ok(response) = client
            .call(|ch: Channel| {
                let request = request.clone();
                async move { WorkerControlClient::new(ch).heartbeat(request).await }
            })
            .await
        else {
            continue;
        };
        let mine = response
            .assignments
            .into_iter()
            .map(|a| (a.task_id, a.epoch))
            .collect();
        if let Ok(mut a) = assignments.lock() {
            a.insert(worker.clone(), mine);
        }
    }
}

/// A report shaped like a real incremental task's.
fn progress(worker: &str, task: &str, epoch: u64, round: u64) -> pb::ProgressReport {
    let position = format!(
        r#"{{"phase":"incremental","rows_copied":0,"rows_applied":{},"position":{{"file":"binlog.000042","pos":{},"gtid":"0-1-{}"}},"tables":{{}}}}"#,
        round * 100,
        4 + round * 1000,
        round
    );
    pb::ProgressReport {
        worker_id: worker.to_string(),
        task_id: task.to_string(),
        epoch,
        phase: "incremental".into(),
        checkpoint: Some(pb::Checkpoint {
            position,
            display: format!("binlog.000042:{} gtid 0-1-{round}", 4 + round * 1000),
            rows_applied: round * 100,
            event_time_ms: dts_common::time::now_ms(),
            ..Default::default()
        }),
        error: String::new(),
        fatal: false,
    }
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
