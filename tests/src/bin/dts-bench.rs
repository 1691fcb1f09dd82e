//! `dts-bench`: the benchmark suite (run it through `deploy/bench.sh`, which
//! installs sysbench and mydumper and builds in release mode).

use clap::Parser;
use dts_tests::bench::report::Report;
use dts_tests::bench::shape::Shape;
use dts_tests::bench::{
    catch_up, failover, full_sync, latency, memory, scale, two_way, verify, Settings,
};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "dts-bench")]
struct Args {
    /// Small sizes and short runs: a few minutes in all.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (full-sync, catch-up, latency, two-way, verify, failover, scale, memory) [default: all].
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// sysbench tables for the full sync [default: 4].
    #[arg(long)]
    tables: Option<u32>,
    /// Rows per sysbench table for the full sync [default: 250000; quick 50000].
    #[arg(long)]
    table_size: Option<u64>,
    /// Full-sync and catch-up rounds, contenders taking turns; medians are reported [default: 3; quick 1].
    #[arg(long)]
    rounds: Option<u32>,
    /// Threads for every contender [default: 4].
    #[arg(long)]
    threads: Option<u32>,
    /// oltp_write_only transactions in the catch-up backlog [default: 50000; quick 10000].
    #[arg(long)]
    backlog: Option<u64>,
    /// Seconds per latency rate [default: 60; quick 15].
    #[arg(long)]
    latency_seconds: Option<u64>,
    /// sysbench's --rand-type for the catch-up and latency workloads:
    /// special (75% of the changes on 1% of the rows), uniform, gaussian,
    /// pareto [default: special, sysbench's own].
    #[arg(long)]
    rand_type: Option<String>,
    /// Record perf profiles of the dts worker and destination server during
    /// the full sync and catch-up runs (into <out>/profiles/).
    #[arg(long)]
    profile: bool,
    /// Where the full-sync and catch-up processes run: `pinned` (the
    /// destination server on a core of its own, everything else on the
    /// others, as in production where they are different machines) and
    /// `shared` (every process on every core) [default: pinned,shared with 2
    /// cores or more, else shared]. The other scenarios run shared.
    #[arg(long, value_delimiter = ',')]
    shape: Vec<String>,
    /// Where bench.json, bench.csv and bench.md go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = if args.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    settings.tables = args.tables.unwrap_or(settings.tables);
    settings.table_size = args.table_size.unwrap_or(settings.table_size);
    settings.rounds = args.rounds.unwrap_or(settings.rounds).max(1);
    settings.threads = args.threads.unwrap_or(settings.threads);
    settings.backlog_events = args.backlog.unwrap_or(settings.backlog_events);
    settings.latency_seconds = args.latency_seconds.unwrap_or(settings.latency_seconds);
    if let Some(rand_type) = args.rand_type {
        settings.rand_type = rand_type;
    }
    settings.profile_dir = args.profile.then(|| args.out.join("profiles"));
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let shapes = if args.shape.is_empty() {
        Shape::defaults()
    } else {
        args.shape
            .iter()
            .map(|name| Shape::parse(name))
            .collect::<anyhow::Result<Vec<_>>>()?
    };

    let mut report = Report {
        machine: machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        figures: Vec::new(),
    };
    println!("dts-bench on {}", report.machine);
    for shape in shapes {
        shape.enter()?;
        settings.shape = shape;
        if wanted("full-sync") {
            full_sync::run_scenario(&settings, &mut report).await?;
        }
        if wanted("catch-up") {
            catch_up::run_scenario(&settings, &mut report).await?;
        }
    }
    Shape::Shared.enter()?;
    settings.shape = Shape::Shared;
    if wanted("latency") {
        latency::run_scenario(&settings, &mut report).await?;
    }
    if wanted("two-way") {
        two_way::run_scenario(&settings, &mut report).await?;
    }
    if wanted("verify") {
        verify::run_scenario(&settings, &mut report).await?;
    }
    if wanted("failover") {
        failover::run_scenario(&mut report).await?;
    }
    if wanted("scale") {
        // Mutual TLS is the default; the plaintext run beside it is its cost.
        for transport in [scale::Transport::Tls, scale::Transport::Plaintext] {
            scale::run_scenario(
                settings.scale_workers,
                settings.scale_tasks,
                settings.scale_seconds,
                transport,
                &mut report,
            )
            .await?;
        }
    }
    if wanted("memory") {
        memory::run_scenario(settings.big_transaction_rows, &mut report).await?;
    }
    println!("\n{}", report.table());
    report.write(&args.out)?;
    println!("written: {}/bench.{{json,csv,md}}", args.out.display());
    Ok(())
}

/// CPU model and count, memory, MariaDB version: what the figures depend on.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let mariadb = std::process::Command::new("mariadbd")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} x {model}, {mem_gib:.0} GiB; {mariadb}")
}
