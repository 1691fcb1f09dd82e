//! Scenario 6: peak worker memory while applying one 1,000,000-row transaction.

use super::report::Report;
use super::tools::SERVER_OPTIONS;
use crate::converge::wait_caught_up;
use crate::fixtures::sync_task;
use crate::{MariaDb, TestCluster};
use std::time::Duration;

const SCENARIO: &str = "worker memory";

pub async fn run_scenario(rows: u64, report: &mut Report) -> anyhow::Result<()> {
    println!("== {SCENARIO}: one transaction of {rows} rows");
    let source = MariaDb::start_with(1, SERVER_OPTIONS).await?;
    let destination = MariaDb::start_with(2, SERVER_OPTIONS).await?;
    source
        .exec("CREATE DATABASE big; CREATE TABLE big.t (id BIGINT PRIMARY KEY, pad VARCHAR(100) NOT NULL)")
        .await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let spec = sync_task(
        "bench-memory",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"big\"",
        4,
    );
    let task = cluster.create_task(&spec, true).await?.id;
    let running = cluster
        .wait_for_task_phase(&task, "incremental", Duration::from_secs(600))
        .await?;
    let before = cluster.worker(&running.worker_id)?.process.peak_rss_kib()?;
    source
        .exec(&format!(
            "USE big; INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_{rows}"
        ))
        .await?;
    wait_caught_up(&source, &destination, 4, Duration::from_secs(3600)).await?;
    let count = destination
        .query_value("SELECT COUNT(*) FROM big.t")
        .await?;
    let task_now = cluster.task(&task).await?;
    anyhow::ensure!(
        count == Some(rows.to_string()),
        "the destination has {count:?} rows, not {rows}; task {} {:?} {:?}\n{}",
        task_now.status,
        task_now.phase,
        task_now.last_error,
        cluster.logs()
    );
    let peak = cluster.worker(&running.worker_id)?.process.peak_rss_kib()?;
    report.add_noted(
        SCENARIO,
        &format!("dts worker, {rows}-row transaction"),
        "peak RSS",
        peak as f64 / 1024.0,
        "MiB",
        &format!(
            "{:.0} MiB before it; goal < 256 MiB",
            before as f64 / 1024.0
        ),
    );
    Ok(())
}
