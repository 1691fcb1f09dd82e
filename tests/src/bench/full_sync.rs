//! Scenario 1: copy sysbench tables with dts, with `mariadb-dump | mariadb`,
//! and with mydumper/myloader at the same thread count, onto one destination
//! server emptied between runs.

use super::report::Report;
use super::tools::{run, run_shell, Sysbench, SERVER_OPTIONS};
use super::Settings;
use crate::compare::assert_same_rows;
use crate::fixtures::sync_task;
use crate::{MariaDb, TestCluster};
use std::process::Command;
use std::time::{Duration, Instant};

const SCENARIO: &str = "full sync";

pub async fn run_scenario(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let rows = u64::from(settings.tables) * settings.table_size;
    println!(
        "== {SCENARIO}: {} tables x {} rows, {} threads",
        settings.tables, settings.table_size, settings.threads
    );
    let source = MariaDb::start_with(1, SERVER_OPTIONS).await?;
    let destination = MariaDb::start_with(2, SERVER_OPTIONS).await?;
    source.exec("CREATE DATABASE sbtest").await?;
    Sysbench {
        port: source.port,
        tables: settings.tables,
        table_size: settings.table_size,
    }
    .prepare(settings.threads)?;
    let tables: Vec<String> = (1..=settings.tables)
        .map(|i| format!("sbtest{i}"))
        .collect();
    let pairs: Vec<(&str, &str)> = tables.iter().map(|t| ("sbtest", t.as_str())).collect();

    let mut results: Vec<(String, Duration)> = Vec::new();

    // dts: a schema + full task on a one-worker cluster with `threads` DU.
    reset(&destination).await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(settings.threads)
        .start()
        .await?;
    let spec = sync_task(
        "bench-full",
        source.port,
        destination.port,
        &["schema", "full"],
        "[[objects]]\ndatabase = \"sbtest\"",
        settings.threads,
    );
    let profiled_pids = [
        ("worker", cluster.workers[0].process.pid().unwrap_or(0)),
        ("destination", destination.pid().unwrap_or(0)),
        ("source", source.pid().unwrap_or(0)),
    ];
    // Timed inside, so that starting and stopping a profiler does not count.
    let took = super::profiled(settings, "full-sync", &profiled_pids, async {
        let started = Instant::now();
        let task = cluster.create_task(&spec, true).await?.id;
        cluster
            .wait_for_task_phase(&task, "done", Duration::from_secs(3600))
            .await?;
        Ok(started.elapsed())
    })
    .await?;
    results.push(("dts".into(), took));
    if let Some(dir) = &settings.profile_dir {
        let log = dir.join("full-sync-worker.log");
        std::fs::write(&log, cluster.worker_log(&cluster.workers[0].id))?;
        println!("  worker log: {}", log.display());
    }
    drop(cluster);
    assert_same_rows(&source, &destination, &pairs).await?;

    // mariadb-dump piped into mariadb: one thread by nature.
    reset(&destination).await?;
    let took = run_shell(
        "mariadb-dump | mariadb",
        &format!(
            "mariadb-dump --single-transaction -h127.0.0.1 -P{} -uroot --databases sbtest \
             | mariadb -h127.0.0.1 -P{} -uroot",
            source.port, destination.port
        ),
    )?;
    results.push(("mariadb-dump piped to mariadb".into(), took));
    assert_same_rows(&source, &destination, &pairs).await?;

    // mydumper/myloader with the same threads; the dump is split into chunks
    // so the threads have work to share.
    reset(&destination).await?;
    let dump_dir = tempfile::Builder::new()
        .prefix("dts-bench-dump-")
        .tempdir()?;
    let threads = settings.threads.to_string();
    let (dump, _) = run(
        "mydumper",
        Command::new("mydumper").args([
            "--host=127.0.0.1",
            &format!("--port={}", source.port),
            "--user=root",
            "--database=sbtest",
            &format!("--threads={threads}"),
            "--rows=50000",
            &format!("--outputdir={}", dump_dir.path().display()),
        ]),
    )?;
    let (load, _) = run(
        "myloader",
        Command::new("myloader").args([
            "--host=127.0.0.1",
            &format!("--port={}", destination.port),
            "--user=root",
            &format!("--threads={threads}"),
            "--overwrite-tables",
            &format!("--directory={}", dump_dir.path().display()),
        ]),
    )?;
    results.push(("mydumper/myloader".into(), dump + load));
    assert_same_rows(&source, &destination, &pairs).await?;

    let dts = results[0].1.as_secs_f64();
    for (subject, took) in &results {
        let secs = took.as_secs_f64();
        report.add(SCENARIO, subject, "seconds", secs, "s");
        report.add(SCENARIO, subject, "rows/s", rows as f64 / secs, "rows/s");
    }
    let (best_name, best) = results[1..]
        .iter()
        .min_by(|a, b| a.1.cmp(&b.1))
        .map(|(n, d)| (n.clone(), d.as_secs_f64()))
        .unwrap_or_default();
    report.add_noted(
        SCENARIO,
        "dts",
        "speed vs best peer",
        best / dts,
        "x",
        &format!("best peer: {best_name}; goal >= 1.5 vs mydumper/myloader"),
    );
    Ok(())
}

/// An empty destination: no copied database, no dts metadata.
async fn reset(destination: &MariaDb) -> anyhow::Result<()> {
    destination
        .exec("DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS dts_meta")
        .await
}
