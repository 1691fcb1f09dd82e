//! Scenario 4: failover times with default settings under a running load:
//! SIGKILL of the worker running a task until its replacement applies a
//! change, and SIGKILL of the coordinator leader until a new one leads.

use super::report::Report;
use super::tools::SERVER_OPTIONS;
use crate::fixtures::sync_task;
use crate::load::{Load, LOAD_SCHEMA};
use crate::wait::wait_for;
use crate::{MariaDb, TestCluster};
use std::time::{Duration, Instant};

const SCENARIO: &str = "failover";
const TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run_scenario(report: &mut Report) -> anyhow::Result<()> {
    println!("== {SCENARIO}: 3 coordinators, 2 workers, default lease (3 s)");
    let source = MariaDb::start_with(1, SERVER_OPTIONS).await?;
    let destination = MariaDb::start_with(2, SERVER_OPTIONS).await?;
    source.exec(LOAD_SCHEMA).await?;
    let mut cluster = TestCluster::builder()
        .coordinators(3)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "bench-failover",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"load_db\"",
        2,
    );
    let task = cluster.create_task(&spec, true).await?.id;
    let load = Load::start(&source, 1).await?;
    let first = cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    let applying_epoch = || async {
        destination
            .query_value("SELECT MAX(epoch) FROM dts_meta.checkpoints WHERE lane >= 1")
            .await
            .ok()
            .flatten()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("the first owner applying", TIMEOUT, || async {
        Ok((applying_epoch().await == first.epoch).then_some(()))
    })
    .await?;

    let killed = Instant::now();
    cluster.worker(&first.worker_id)?.process.kill();
    let moved = cluster
        .wait_for_task_moved(&task, &first.worker_id, TIMEOUT)
        .await?;
    wait_for("the new owner's first applied change", TIMEOUT, || async {
        Ok((applying_epoch().await >= moved.epoch).then_some(()))
    })
    .await?;
    report.add_noted(
        SCENARIO,
        "worker SIGKILL",
        "to first change applied by the replacement",
        killed.elapsed().as_secs_f64(),
        "s",
        "goal < 5 s",
    );

    let old_leader = cluster.cluster_status().await?.leader_id;
    let killed = Instant::now();
    cluster.coordinator(old_leader)?.process.kill();
    wait_for("a new leader", TIMEOUT, || async {
        let status = cluster.cluster_status().await?;
        Ok((status.leader_id != 0
            && status.leader_id != old_leader
            && status
                .coordinators
                .iter()
                .any(|c| c.id == status.leader_id && c.role == "leader"))
        .then_some(()))
    })
    .await?;
    report.add(
        SCENARIO,
        "leader SIGKILL",
        "time without a leader",
        killed.elapsed().as_secs_f64(),
        "s",
    );
    load.stop().await?;
    Ok(())
}
