//! Scenario 3: end-to-end latency at a steady sysbench rate, measured from
//! outside dts. A probe commits a row carrying its source commit time ten
//! times a second and watches the destination until the row is visible.

use super::report::Report;
use super::tools::{Sysbench, SERVER_OPTIONS};
use super::Settings;
use crate::fixtures::sync_task;
use crate::{MariaDb, TestCluster};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

const SCENARIO: &str = "steady-state latency";

pub async fn run_scenario(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let source = MariaDb::start_with(1, SERVER_OPTIONS).await?;
    let destination = MariaDb::start_with(2, SERVER_OPTIONS).await?;
    source
        .exec(
            "CREATE DATABASE sbtest; CREATE DATABASE probe; \
             CREATE TABLE probe.probe (id BIGINT PRIMARY KEY, committed_at DATETIME(6) NOT NULL)",
        )
        .await?;
    let sysbench = Sysbench {
        port: source.port,
        db: "sbtest".into(),
        tables: settings.tables,
        table_size: 10_000,
        rand_type: settings.rand_type.clone(),
    };
    sysbench.prepare(settings.threads)?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(settings.threads)
        .start()
        .await?;
    let spec = sync_task(
        "bench-latency",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"sbtest\"\n[[objects]]\ndatabase = \"probe\"",
        settings.threads,
    );
    let task = cluster.create_task(&spec, true).await?.id;
    cluster
        .wait_for_task_phase(&task, "incremental", Duration::from_secs(600))
        .await?;

    let mut next_id = 0u64;
    for &rate in &settings.latency_rates {
        println!(
            "== {SCENARIO}: sysbench oltp_write_only at {rate} tx/s for {} s",
            settings.latency_seconds
        );
        let load = sysbench.spawn_rate(settings.threads, rate, settings.latency_seconds)?;
        let mut samples = Vec::new();
        let mut src = source.conn().await?;
        let mut dst = destination.conn().await?;
        let until = Instant::now() + Duration::from_secs(settings.latency_seconds);
        while Instant::now() < until {
            next_id += 1;
            src.exec_drop("INSERT INTO probe.probe VALUES (?, NOW(6))", (next_id,))
                .await?;
            let committed = Instant::now();
            loop {
                let seen: Option<u64> = dst
                    .exec_first("SELECT id FROM probe.probe WHERE id = ?", (next_id,))
                    .await?;
                if seen.is_some() {
                    break;
                }
                anyhow::ensure!(
                    committed.elapsed() < Duration::from_secs(60),
                    "probe {next_id} never reached the destination"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples.push(committed.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let output = load.wait_with_output()?;
        let achieved = achieved_rate(&String::from_utf8_lossy(&output.stdout));
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples
                .get(i)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0)
        };
        let subject = format!("dts at {rate} tx/s");
        let note = format!(
            "{} probes; sysbench achieved {achieved:.0} tx/s",
            samples.len()
        );
        report.add_noted(SCENARIO, &subject, "p50", at(0.5), "ms", &note);
        report.add_noted(
            SCENARIO,
            &subject,
            "p99",
            at(0.99),
            "ms",
            "goal < 100 ms at 2000 tx/s",
        );
        report.add(SCENARIO, &subject, "max", at(1.0), "ms");
    }
    Ok(())
}

/// "transactions: N (X per sec.)" from sysbench's summary.
fn achieved_rate(output: &str) -> f64 {
    output
        .lines()
        .find(|l| l.trim_start().starts_with("transactions:"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}
