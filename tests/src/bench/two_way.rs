//! Scenario: a two-way pair at a steady sysbench rate. First only A is
//! written (the one-way figure, measured on the same pair), then both sides
//! at once, each in databases of its own; probes each way measure the
//! latency from outside dts, as in the latency scenario.

use super::report::Report;
use super::tools::{Sysbench, SERVER_OPTIONS};
use super::Settings;
use crate::fixtures::sync_task;
use crate::{MariaDb, TestCluster};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

const SCENARIO: &str = "two-way";

pub async fn run_scenario(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let a = MariaDb::start_with(1, SERVER_OPTIONS).await?;
    let b = MariaDb::start_with(2, SERVER_OPTIONS).await?;
    a.exec(
        "CREATE DATABASE sa; CREATE DATABASE sb; CREATE DATABASE probe; \
         CREATE TABLE probe.a_to_b (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL); \
         CREATE TABLE probe.b_to_a (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL)",
    )
    .await?;
    // Both sides' tables start on A; the forward task copies them to B.
    let sysbench = |server: &MariaDb, db: &str| Sysbench {
        port: server.port,
        db: db.to_string(),
        tables: settings.tables,
        table_size: 10_000,
        rand_type: settings.rand_type.clone(),
    };
    sysbench(&a, "sa").prepare(settings.threads)?;
    sysbench(&a, "sb").prepare(settings.threads)?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(settings.threads * 2)
        .start()
        .await?;
    let spec = format!(
        "topology = \"two_way\"\n{}",
        sync_task(
            "bench-two-way",
            a.port,
            b.port,
            &["schema", "full", "incremental"],
            "[[objects]]\ndatabase = \"sa\"\n[[objects]]\ndatabase = \"sb\"\n[[objects]]\ndatabase = \"probe\"",
            settings.threads,
        )
    );
    let created = cluster.create_task(&spec, true).await?;
    for task in [&created.id, &created.linked_task_id] {
        cluster
            .wait_for_task_phase(task, "incremental", Duration::from_secs(600))
            .await?;
    }
    let rate = settings.latency_rates.first().copied().unwrap_or(500);
    let seconds = settings.latency_seconds;
    let mut next_id = 0u64;
    for both in [false, true] {
        println!(
            "== {SCENARIO}: sysbench oltp_write_only at {rate} tx/s on {} for {seconds} s",
            if both { "both sides" } else { "A only" }
        );
        let mut loads = vec![sysbench(&a, "sa").spawn_rate(settings.threads, rate, seconds)?];
        if both {
            loads.push(sysbench(&b, "sb").spawn_rate(settings.threads, rate, seconds)?);
        }
        let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
        let (mut on_a, mut on_b) = (a.conn().await?, b.conn().await?);
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            next_id += 1;
            to_b.push(probe(&mut on_a, &mut on_b, "a_to_b", next_id).await?);
            if both {
                to_a.push(probe(&mut on_b, &mut on_a, "b_to_a", next_id).await?);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for load in loads {
            load.wait_with_output()?;
        }
        let written = if both {
            "A and B each written"
        } else {
            "only A written"
        };
        for (way, samples) in [("A to B", &mut to_b), ("B to A", &mut to_a)] {
            if samples.is_empty() {
                continue;
            }
            let subject = format!("{way}, {written} at {rate} tx/s");
            let note = format!("{} probes", samples.len());
            report.add_noted(
                SCENARIO,
                &subject,
                "p50",
                percentile(samples, 0.5),
                "ms",
                &note,
            );
            report.add(SCENARIO, &subject, "p99", percentile(samples, 0.99), "ms");
        }
    }
    let info = cluster.task(&created.id).await?;
    anyhow::ensure!(
        info.last_error.is_empty(),
        "forward task: {}",
        info.last_error
    );
    Ok(())
}

/// Commits a probe row on `src` and waits until `dst` shows it; returns
/// how long that took.
async fn probe(
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
    table: &str,
    id: u64,
) -> anyhow::Result<Duration> {
    src.exec_drop(
        format!("INSERT INTO probe.{table} VALUES (?, NOW(6))"),
        (id,),
    )
    .await?;
    let committed = Instant::now();
    loop {
        let seen: Option<u64> = dst
            .exec_first(format!("SELECT id FROM probe.{table} WHERE id = ?"), (id,))
            .await?;
        if seen.is_some() {
            return Ok(committed.elapsed());
        }
        anyhow::ensure!(
            committed.elapsed() < Duration::from_secs(60),
            "probe {id} of {table} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The `q` quantile of `samples`, in milliseconds.
fn percentile(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples
        .get(i)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}
