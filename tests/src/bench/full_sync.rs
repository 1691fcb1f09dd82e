//! Scenario 1: copy sysbench tables with dts, with `mariadb-dump | mariadb`,
//! and with mydumper/myloader at the same thread count. Every contender
//! writes into a destination server of its own, started fresh, so none
//! inherits another's warmed buffer pool.
//!
//! dts writes the copied rows to the destination's binlog (a replica or a
//! cascaded task downstream needs them), and so does `mariadb-dump | mariadb`.
//! myloader does not unless asked (`--enable-binlog`): it runs both ways, and
//! dts is compared with the one doing the same work; dts also runs with
//! `full_sync_binlog = false`, to compare with myloader's default. The contenders take
//! turns for a number of rounds and each is reported by its median.
//!
//! Beside them runs the destination's limit (see `limit`): the same rows
//! loaded by the destination from files prepared beforehand, with and
//! without the binlog; dts is reported as a fraction of it.

use super::limit::LoadFiles;
use super::report::Report;
use super::tools::{cpu_seconds, quiesce, run, run_shell, Sysbench, SERVER_OPTIONS};
use super::{median, median_seconds, Settings};
use crate::compare::assert_same_rows;
use crate::fixtures::sync_task;
use crate::{MariaDb, TestCluster};
use std::process::Command;
use std::time::{Duration, Instant};

const SCENARIO: &str = "full sync";
const DTS: &str = "dts";
const DTS_QUIET: &str = "dts, full_sync_binlog = false";
const DUMP: &str = "mariadb-dump piped to mariadb";
const MYLOADER_BINLOG: &str = "mydumper/myloader --enable-binlog";
const MYLOADER: &str = "mydumper/myloader, destination binlog off (its default)";
const LIMIT_BINLOG: &str = "destination limit: LOAD DATA, indexes after, binlog on";
const LIMIT: &str = "destination limit: LOAD DATA, indexes after, binlog off";

/// One contender's copy: how long it took and the CPU seconds each process
/// spent on it (on two cores, the servers and the copier compete).
struct Run {
    subject: &'static str,
    took: Duration,
    cpu: Vec<(&'static str, f64)>,
}

pub async fn run_scenario(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let rows = u64::from(settings.tables) * settings.table_size;
    let scenario = settings.shape.scenario(SCENARIO);
    println!(
        "== {scenario}: {} tables x {} rows, {} threads, {} rounds; {}",
        settings.tables,
        settings.table_size,
        settings.threads,
        settings.rounds,
        settings.shape.describe()
    );
    let source = MariaDb::start_with(1, SERVER_OPTIONS).await?;
    source.exec("CREATE DATABASE sbtest").await?;
    Sysbench {
        port: source.port,
        db: "sbtest".into(),
        tables: settings.tables,
        table_size: settings.table_size,
        rand_type: settings.rand_type.clone(),
    }
    .prepare(settings.threads)?;
    let tables: Vec<String> = (1..=settings.tables)
        .map(|i| format!("sbtest{i}"))
        .collect();
    let pairs: Vec<(&str, &str)> = tables.iter().map(|t| ("sbtest", t.as_str())).collect();

    // The contenders take turns, round after round, so that a slow spell of
    // the machine falls on all of them alike.
    let load_files = LoadFiles::prepare(&source, "sbtest", &tables).await?;
    let mut runs = Vec::new();
    for round in 0..settings.rounds {
        quiesce(&[&source]).await?;
        let destination = fresh_destination(settings).await?;
        runs.push(copy_with_dts(settings, &source, &destination, true, round == 0).await?);
        assert_same_rows(&source, &destination, &pairs).await?;
        drop(destination);
        let destination = fresh_destination(settings).await?;
        runs.push(copy_with_dts(settings, &source, &destination, false, false).await?);
        assert_same_rows(&source, &destination, &pairs).await?;
        drop(destination);
        runs.extend(copy_with_mydumper(settings, &source, &pairs).await?);
        for (subject, binlog) in [(LIMIT_BINLOG, true), (LIMIT, false)] {
            let destination = fresh_destination(settings).await?;
            let (took, cpu) = measured(
                &[("destination", &destination)],
                load_files.load(&destination, settings.threads as usize, binlog),
            )
            .await?;
            assert_same_rows(&source, &destination, &pairs).await?;
            runs.push(Run { subject, took, cpu });
        }
    }
    // Far behind the others: once is enough.
    let destination = fresh_destination(settings).await?;
    let (took, cpu) = measured(&[("destination", &destination)], async {
        run_shell(
            DUMP,
            &format!(
                "mariadb-dump --single-transaction -h127.0.0.1 -P{} -uroot --databases sbtest \
                 | mariadb -h127.0.0.1 -P{} -uroot",
                source.port, destination.port
            ),
        )
    })
    .await?;
    assert_same_rows(&source, &destination, &pairs).await?;
    runs.push(Run {
        subject: DUMP,
        took,
        cpu,
    });
    drop(destination);

    let mut medians = Vec::new();
    for subject in [
        DTS,
        DTS_QUIET,
        MYLOADER_BINLOG,
        MYLOADER,
        LIMIT_BINLOG,
        LIMIT,
        DUMP,
    ] {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.subject == subject).collect();
        let (secs, note) = median_seconds(mine.iter().map(|r| r.took.as_secs_f64()).collect());
        report.add_noted(&scenario, subject, "seconds", secs, "s", &note);
        report.add(&scenario, subject, "rows/s", rows as f64 / secs, "rows/s");
        let processes: Vec<&str> = mine
            .first()
            .map(|r| r.cpu.iter().map(|(p, _)| *p).collect())
            .unwrap_or_default();
        for process in processes {
            let mut used: Vec<f64> = mine
                .iter()
                .flat_map(|r| r.cpu.iter().filter(|(p, _)| *p == process))
                .map(|(_, s)| *s)
                .collect();
            report.add(
                &scenario,
                subject,
                &format!("{process} CPU"),
                median(&mut used),
                "s",
            );
        }
        medians.push((subject, secs));
    }
    let seconds = |subject: &str| {
        medians
            .iter()
            .find(|(s, _)| *s == subject)
            .map(|(_, secs)| *secs)
            .unwrap_or(f64::NAN)
    };
    // Each ratio is of medians; its note gives the rounds' own ratios, each
    // of two contenders that ran within a minute of each other, which the
    // machine's slow spells (the limit itself took 5.1 to 8.4 s in one run)
    // move far less than they move either median.
    let per_round = |numerator: &str, denominator: &str, scale: f64| -> String {
        let of = |subject: &str| -> Vec<f64> {
            runs.iter()
                .filter(|r| r.subject == subject)
                .map(|r| r.took.as_secs_f64())
                .collect()
        };
        let mut ratios: Vec<f64> = of(numerator)
            .iter()
            .zip(of(denominator))
            .map(|(n, d)| n / d * scale)
            .collect();
        if ratios.len() < 2 {
            return String::new();
        }
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        format!(
            "; rounds {}, their median {:.2}",
            each.join(", "),
            median(&mut ratios)
        )
    };
    for (subject, versus, peer, note) in [
        (
            DTS,
            "speed vs mydumper/myloader",
            MYLOADER_BINLOG,
            "both writing the destination binlog; goal >= 1.5",
        ),
        (
            DTS_QUIET,
            "speed vs myloader's default",
            MYLOADER,
            "neither writing the destination binlog",
        ),
        (
            DTS,
            "speed vs myloader's default",
            MYLOADER,
            "myloader without the destination binlog, dts with it",
        ),
    ] {
        report.add_noted(
            &scenario,
            subject,
            versus,
            seconds(peer) / seconds(subject),
            "x",
            &format!("{note}{}", per_round(peer, subject, 1.0)),
        );
    }
    for (subject, limit, note) in [
        (
            DTS,
            LIMIT_BINLOG,
            "both writing the destination binlog; goal >= 85%",
        ),
        (DTS_QUIET, LIMIT, "neither writing the destination binlog"),
    ] {
        report.add_noted(
            &scenario,
            subject,
            "fraction of the destination's limit",
            seconds(limit) / seconds(subject) * 100.0,
            "%",
            &format!("{note}{}", per_round(limit, subject, 100.0)),
        );
    }
    Ok(())
}

/// A destination server started fresh, placed where the shape puts it.
async fn fresh_destination(settings: &Settings) -> anyhow::Result<MariaDb> {
    let destination = MariaDb::start_with(2, SERVER_OPTIONS).await?;
    settings.shape.place_destination(&destination)?;
    Ok(destination)
}

/// One mydumper dump, loaded by myloader twice, with and without the
/// destination binlog, each into a fresh server; the dump counts in both.
async fn copy_with_mydumper(
    settings: &Settings,
    source: &MariaDb,
    pairs: &[(&str, &str)],
) -> anyhow::Result<Vec<Run>> {
    let dump_dir = tempfile::Builder::new()
        .prefix("dts-bench-dump-")
        .tempdir()?;
    let threads = settings.threads.to_string();
    let (dump, source_cpu) = measured(&[("source", source)], async {
        run(
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
        )
        .map(|(took, _)| took)
    })
    .await?;
    let mut runs = Vec::new();
    for (subject, binlog) in [(MYLOADER_BINLOG, true), (MYLOADER, false)] {
        let destination = fresh_destination(settings).await?;
        let mut args = vec![
            "--host=127.0.0.1".to_string(),
            format!("--port={}", destination.port),
            "--user=root".to_string(),
            format!("--threads={threads}"),
            "--overwrite-tables".to_string(),
            format!("--directory={}", dump_dir.path().display()),
        ];
        if binlog {
            args.push("--enable-binlog".to_string());
        }
        let (load, mut cpu) = measured(&[("destination", &destination)], async {
            run("myloader", Command::new("myloader").args(&args)).map(|(took, _)| took)
        })
        .await?;
        assert_same_rows(source, &destination, pairs).await?;
        cpu.extend(source_cpu.iter().copied());
        runs.push(Run {
            subject,
            took: dump + load,
            cpu,
        });
    }
    Ok(runs)
}

/// dts: a schema + full task on a one-worker cluster with `threads` DU.
/// `binlog`: the task's full_sync_binlog. Only the first round of the
/// default is profiled (with `--profile`).
async fn copy_with_dts(
    settings: &Settings,
    source: &MariaDb,
    destination: &MariaDb,
    binlog: bool,
    profile: bool,
) -> anyhow::Result<Run> {
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
    )
    .replacen(
        "\nmodes",
        &format!("\nfull_sync_binlog = {binlog}\nmodes"),
        1,
    );
    let pids = [
        ("worker", cluster.workers[0].process.pid().unwrap_or(0)),
        ("destination", destination.pid().unwrap_or(0)),
        ("source", source.pid().unwrap_or(0)),
    ];
    let cpu_before: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    // Timed inside, so that starting and stopping a profiler does not count.
    let unprofiled = Settings {
        profile_dir: None,
        ..settings.clone()
    };
    let profiling = if profile { settings } else { &unprofiled };
    let took = super::profiled(profiling, "full-sync", &pids, async {
        let started = Instant::now();
        let task = cluster.create_task(&spec, true).await?.id;
        cluster
            .wait_for_task_phase(&task, "done", Duration::from_secs(3600))
            .await?;
        Ok(started.elapsed())
    })
    .await?;
    let cpu = pids
        .iter()
        .zip(cpu_before)
        .map(|((name, pid), before)| (*name, cpu_seconds(*pid) - before))
        .collect();
    if let Some(dir) = &profiling.profile_dir {
        let log = dir.join("full-sync-worker.log");
        std::fs::write(&log, cluster.worker_log(&cluster.workers[0].id))?;
        println!("  worker log: {}", log.display());
    }
    Ok(Run {
        subject: if binlog { DTS } else { DTS_QUIET },
        took,
        cpu,
    })
}

/// Runs a copy, and the CPU seconds the given servers spent meanwhile.
async fn measured(
    servers: &[(&'static str, &MariaDb)],
    copy: impl std::future::Future<Output = anyhow::Result<Duration>>,
) -> anyhow::Result<(Duration, Vec<(&'static str, f64)>)> {
    let pids: Vec<i32> = servers.iter().map(|(_, s)| s.pid().unwrap_or(0)).collect();
    let before: Vec<f64> = pids.iter().map(|pid| cpu_seconds(*pid)).collect();
    let took = copy.await?;
    let cpu = servers
        .iter()
        .zip(pids.iter().zip(before))
        .map(|((name, _), (pid, before))| (*name, cpu_seconds(*pid) - before))
        .collect();
    Ok((took, cpu))
}
