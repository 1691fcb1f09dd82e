//! Scenario: verification speed. A source of sysbench tables is copied by
//! a dts task; then, with nothing writing, a dts verification pass compares
//! source and destination chunk by chunk, and pt-table-checksum (what a
//! user runs to compare two servers that are not native replicas of each
//! other) checksums the same tables on both servers at once, in chunks of
//! the same size, with its per-chunk results compared afterwards. Rows
//! compared per second, and the ratio.

use super::report::Report;
use super::tools::{Sysbench, SERVER_OPTIONS};
use super::Settings;
use crate::fixtures::sync_task;
use crate::{wait_for, MariaDb, TestCluster};
use dts_proto::pb::TaskAction;
use mysql_async::prelude::Queryable;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = "verify";
const LONG: Duration = Duration::from_secs(1800);
/// dts's chunk (see the worker's `verify::pass`), given to pt-table-checksum
/// too.
const CHUNK_ROWS: u64 = 10_000;

pub async fn run_scenario(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let source = MariaDb::start_with(1, SERVER_OPTIONS).await?;
    let destination = MariaDb::start_with(2, SERVER_OPTIONS).await?;
    source.exec("CREATE DATABASE sbtest").await?;
    let sysbench = Sysbench {
        port: source.port,
        db: "sbtest".into(),
        tables: settings.tables,
        table_size: settings.table_size,
        rand_type: settings.rand_type.clone(),
    };
    sysbench.prepare(settings.threads)?;
    let rows = u64::from(settings.tables) * settings.table_size;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(settings.threads)
        .start()
        .await?;
    let spec = sync_task(
        "bench-verify",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"sbtest\"",
        settings.threads,
    );
    let task = cluster.run_task_until(&spec, "incremental", LONG).await?;
    println!(
        "== {SCENARIO}: {} tables x {} rows compared on both sides",
        settings.tables, settings.table_size
    );
    for round in 1..=settings.rounds {
        let summary = verify_pass(&cluster, &task, u64::from(round)).await?;
        let compared = summary["rows_compared"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            compared == rows && summary["differences"].as_u64() == Some(0),
            "the pass compared {compared} of {rows} rows: {summary}"
        );
        let millis = summary["finished_ms"].as_i64().unwrap_or(0)
            - summary["started_ms"].as_i64().unwrap_or(0);
        let dts = Duration::from_millis(millis.max(1) as u64);
        let pt = pt_table_checksum(&source, &destination).await?;
        let note = format!("round {round} of {}", settings.rounds);
        let per_second = |took: Duration| rows as f64 / took.as_secs_f64();
        report.add_noted(
            SCENARIO,
            "dts verification pass",
            "rows/s",
            per_second(dts),
            "rows/s",
            &note,
        );
        report.add_noted(
            SCENARIO,
            "pt-table-checksum on both servers at once",
            "rows/s",
            per_second(pt),
            "rows/s",
            &note,
        );
        report.add_noted(
            SCENARIO,
            "dts verification pass",
            "speed vs pt-table-checksum",
            pt.as_secs_f64() / dts.as_secs_f64(),
            "x",
            &note,
        );
    }
    // One more pass while sysbench writes: nothing in flight is a difference.
    let rate = settings.latency_rates.first().copied().unwrap_or(500);
    println!("  a pass under sysbench oltp_write_only at {rate} tx/s");
    let load = sysbench.spawn_rate(settings.threads, rate, settings.latency_seconds)?;
    let started = Instant::now();
    let summary = verify_pass(&cluster, &task, u64::from(settings.rounds) + 1).await?;
    let took = started.elapsed();
    load.wait_with_output()?;
    let count = |field: &str| summary[field].as_u64().unwrap_or(u64::MAX);
    let note = format!(
        "{} rows compared in {:.1} s, {} unsettled; must be 0",
        count("rows_compared"),
        took.as_secs_f64(),
        count("unsettled")
    );
    report.add_noted(
        SCENARIO,
        &format!("dts verification pass under {rate} tx/s of sysbench"),
        "differences reported",
        count("differences") as f64,
        "rows",
        &note,
    );
    anyhow::ensure!(
        count("differences") == 0,
        "verification reported differences under load: {summary}"
    );
    Ok(())
}

/// Asks for verification pass `pass` and waits until it is done; returns
/// its summary.
async fn verify_pass(
    cluster: &TestCluster,
    task: &str,
    pass: u64,
) -> anyhow::Result<serde_json::Value> {
    cluster.control_task(task, TaskAction::Verify).await?;
    wait_for("the verification pass", LONG, || async {
        let progress = cluster.progress(task).await?;
        let verify = &progress["verify"];
        let done = verify["pass"].as_u64() == Some(pass) && verify["status"] == "done";
        Ok(done.then(|| verify.clone()))
    })
    .await
}

/// pt-table-checksum on both servers at once, in chunks of [`CHUNK_ROWS`]
/// rows; fails unless every chunk's count and checksum agree. Returns the
/// wall time of the slower of the two.
async fn pt_table_checksum(source: &MariaDb, destination: &MariaDb) -> anyhow::Result<Duration> {
    for server in [source, destination] {
        server.exec("DROP DATABASE IF EXISTS percona").await?;
    }
    let started = Instant::now();
    let spawn = |server: &MariaDb| {
        Command::new("pt-table-checksum")
            .args([
                &format!("h=127.0.0.1,P={},u=root", server.port),
                "--databases=sbtest",
                "--recursion-method=none",
                "--no-check-binlog-format",
                "--no-check-replication-filters",
                "--create-replicate-table",
                "--replicate=percona.checksums",
                "--chunk-time=0",
                &format!("--chunk-size={CHUNK_ROWS}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    let children = [spawn(source)?, spawn(destination)?];
    for child in children {
        let output = child.wait_with_output()?;
        // Its exit status is a bit mask of warnings; only the output of a
        // run that checked nothing is a failure.
        anyhow::ensure!(
            output.status.code().is_some(),
            "pt-table-checksum was killed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let took = started.elapsed();
    let (on_source, on_destination) = (checksums(source).await?, checksums(destination).await?);
    anyhow::ensure!(
        !on_source.is_empty() && on_source == on_destination,
        "pt-table-checksum's chunks differ between the servers ({} and {} chunks)",
        on_source.len(),
        on_destination.len()
    );
    Ok(took)
}

/// pt-table-checksum's results on `server`: table, chunk, checksum, rows.
async fn checksums(server: &MariaDb) -> anyhow::Result<Vec<(String, u64, String, u64)>> {
    let mut conn = server.conn().await?;
    Ok(conn
        .query("SELECT tbl, chunk, this_crc, this_cnt FROM percona.checksums ORDER BY tbl, chunk")
        .await?)
}
