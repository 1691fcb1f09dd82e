//! The benchmark suite behind `deploy/bench.sh`: dts side by side with what a
//! user would otherwise run, in one run on one machine, with ratios.

pub mod catch_up;
pub mod failover;
pub mod full_sync;
pub mod latency;
pub mod limit;
pub mod memory;
pub mod report;
pub mod scale;
pub mod shape;
pub mod tools;
pub mod two_way;
pub mod verify;

/// Sizes of a run (flags of `dts-bench`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub tables: u32,
    pub table_size: u64,
    /// Full-sync and catch-up rounds: the contenders take turns this many
    /// times and each is reported by its median, since the machine's speed
    /// drifts.
    pub rounds: u32,
    /// Threads for every contender (dts DU, mydumper/myloader threads, sysbench).
    pub threads: u32,
    pub catch_up_table_size: u64,
    pub backlog_events: u64,
    /// sysbench's key distribution for the catch-up and latency workloads.
    pub rand_type: String,
    pub latency_rates: Vec<u32>,
    pub latency_seconds: u64,
    pub big_transaction_rows: u64,
    pub scale_workers: usize,
    pub scale_tasks: usize,
    pub scale_seconds: u64,
    /// Where perf profiles of the dts worker and destination server go
    /// (`--profile`), for the full sync and catch-up runs.
    pub profile_dir: Option<std::path::PathBuf>,
    /// Where the full-sync and catch-up processes run (`--shape`); the other
    /// scenarios run shared.
    pub shape: shape::Shape,
}

impl Settings {
    pub fn full() -> Self {
        Self {
            tables: 4,
            table_size: 250_000,
            rounds: 3,
            threads: 4,
            catch_up_table_size: 100_000,
            backlog_events: 50_000,
            rand_type: "special".into(),
            latency_rates: vec![500, 2000],
            latency_seconds: 60,
            big_transaction_rows: 1_000_000,
            scale_workers: 100,
            scale_tasks: 2000,
            scale_seconds: 60,
            profile_dir: None,
            shape: shape::Shape::Shared,
        }
    }

    /// A few minutes in all.
    pub fn quick() -> Self {
        Self {
            tables: 4,
            table_size: 50_000,
            rounds: 1,
            threads: 4,
            catch_up_table_size: 20_000,
            backlog_events: 10_000,
            rand_type: "special".into(),
            latency_rates: vec![500, 2000],
            latency_seconds: 15,
            big_transaction_rows: 1_000_000,
            scale_workers: 100,
            scale_tasks: 2000,
            scale_seconds: 20,
            profile_dir: None,
            shape: shape::Shape::Shared,
        }
    }
}

/// Profiles `pids` (name, pid) while `work` runs, when profiling is on.
pub async fn profiled<T>(
    settings: &Settings,
    label: &str,
    pids: &[(&str, i32)],
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let Some(dir) = &settings.profile_dir else {
        return work.await;
    };
    let mut profilers = Vec::new();
    for (name, pid) in pids {
        profilers.push(tools::Profiler::start(
            *pid,
            dir,
            &format!("{label}-{name}"),
        )?);
    }
    let result = work.await;
    for profiler in profilers {
        let summary = profiler.stop()?;
        println!("  profile: {}", summary.display());
    }
    result
}

/// The median of a contender's seconds over the rounds, and the note that
/// lists each round's (empty for a single round).
pub fn median_seconds(mut seconds: Vec<f64>) -> (f64, String) {
    let each: Vec<String> = seconds.iter().map(|s| format!("{s:.2}")).collect();
    let note = if seconds.len() > 1 {
        format!("median of {}", each.join(", "))
    } else {
        String::new()
    };
    (median(&mut seconds), note)
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
