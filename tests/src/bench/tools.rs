//! The peers and workloads a user would reach for: sysbench, mariadb-dump,
//! mydumper/myloader, native replication. Each runs as the real program.

use anyhow::Context;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Options for every benchmark server, source and destination alike, so no
/// contender gets a better-tuned server than another.
pub const SERVER_OPTIONS: &[&str] = &[
    "--innodb-buffer-pool-size=1G",
    "--innodb-log-file-size=512M",
    "--innodb-flush-log-at-trx-commit=2",
    "--sync-binlog=0",
    "--max-connections=500",
];

/// Runs a command to completion; its stderr is the error when it fails.
pub fn run(what: &str, command: &mut Command) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: could not start (is it installed?)"))?;
    let took = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((took, String::from_utf8_lossy(&output.stdout).to_string()))
}

/// Runs a shell pipeline (`a | b`), failing when any part fails.
pub fn run_shell(what: &str, script: &str) -> anyhow::Result<Duration> {
    let mut command = Command::new("bash");
    command.args(["-o", "pipefail", "-c", script]);
    Ok(run(what, &mut command)?.0)
}

pub struct Sysbench {
    pub port: u16,
    /// The database its tables are in.
    pub db: String,
    pub tables: u32,
    pub table_size: u64,
    /// sysbench's `--rand-type`: how the rows a transaction touches are
    /// picked (its default, `special`, sends 75% of them to 1% of the rows).
    pub rand_type: String,
}

impl Sysbench {
    fn command(&self, test: &str, threads: u32) -> Command {
        let mut c = Command::new("sysbench");
        c.args([
            test,
            "--db-driver=mysql",
            "--mysql-host=127.0.0.1",
            &format!("--mysql-port={}", self.port),
            "--mysql-user=root",
            &format!("--mysql-db={}", self.db),
            &format!("--tables={}", self.tables),
            &format!("--table-size={}", self.table_size),
            &format!("--threads={threads}"),
            &format!("--rand-type={}", self.rand_type),
        ]);
        c
    }

    pub fn prepare(&self, threads: u32) -> anyhow::Result<()> {
        let mut c = self.command("oltp_write_only", threads);
        c.arg("prepare");
        run("sysbench prepare", &mut c)?;
        Ok(())
    }

    /// Runs `oltp_write_only` for `events` transactions; returns the row
    /// writes it performed (each write statement changes one row).
    pub fn write_events(&self, threads: u32, events: u64) -> anyhow::Result<u64> {
        let mut c = self.command("oltp_write_only", threads);
        c.args([&format!("--events={events}"), "--time=0", "run"]);
        let (_, out) = run("sysbench run", &mut c)?;
        parse_writes(&out)
    }

    /// Starts `oltp_write_only` at a fixed rate for `seconds` in the background.
    pub fn spawn_rate(
        &self,
        threads: u32,
        rate: u32,
        seconds: u64,
    ) -> anyhow::Result<std::process::Child> {
        let mut c = self.command("oltp_write_only", threads);
        c.args([
            &format!("--rate={rate}"),
            &format!("--time={seconds}"),
            "run",
        ]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().context("start sysbench")
    }
}

impl Sysbench {
    /// Starts `oltp_write_only` at a fixed rate until killed, as an
    /// application would run it: a transaction that meets a deadlock, a lock
    /// wait timeout or a table renamed away under it (an online schema
    /// change's swap) is rolled back and run again.
    pub fn spawn_until_killed(
        &self,
        threads: u32,
        rate: u32,
    ) -> anyhow::Result<std::process::Child> {
        let mut c = self.command("oltp_write_only", threads);
        c.args([
            &format!("--rate={rate}"),
            "--time=0",
            "--events=0",
            "--mysql-ignore-errors=1213,1205,1146",
            "run",
        ]);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c.spawn().context("start sysbench")
    }
}

/// The `write:` count of sysbench's "queries performed" section.
pub fn parse_writes(output: &str) -> anyhow::Result<u64> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("write:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no write count in sysbench output:\n{output}"))
}

/// Waits until InnoDB has purged the undo history of every server's past
/// writes (sysbench's, say), so that the contender timed next does not share
/// the CPU with purging what came before it: 50,000 transactions take the
/// purge threads a second or two.
pub async fn quiesce(servers: &[&crate::MariaDb]) -> anyhow::Result<()> {
    crate::wait_for(
        "the servers to purge their undo history",
        Duration::from_secs(300),
        || async {
            for server in servers {
                let history: u64 = server
                    .query_value(
                        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                         WHERE VARIABLE_NAME = 'INNODB_HISTORY_LIST_LENGTH'",
                    )
                    .await?
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if history > 0 {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await
}

/// CPU seconds (user + system) a process has used so far, from /proc.
pub fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / per_second.max(1.0)
}

/// A `perf record` of one process (CPU-clock samples, so it works where
/// hardware counters are not exposed), summarised by `perf report` when it
/// stops. Only with `dts-bench --profile`, and only where `perf` exists.
pub struct Profiler {
    child: std::process::Child,
    data: std::path::PathBuf,
    summary: std::path::PathBuf,
}

impl Profiler {
    /// Starts sampling `pid`; the profile goes to `<dir>/<name>.perf` and the
    /// summary to `<dir>/<name>.txt`.
    pub fn start(pid: i32, dir: &std::path::Path, name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let data = dir.join(format!("{name}.perf"));
        let child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "997", "-g", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start perf record (is linux-perf installed?)")?;
        // perf attaches asynchronously; give it a moment so the start is sampled.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self {
            child,
            data,
            summary: dir.join(format!("{name}.txt")),
        })
    }

    /// Stops sampling and writes the flat profile; returns its path.
    pub fn stop(mut self) -> anyhow::Result<std::path::PathBuf> {
        let pid = self.child.id() as i32;
        // SIGINT makes perf write its file and exit.
        interrupt(pid)?;
        self.child.wait()?;
        let (_, report) = run(
            "perf report",
            Command::new("perf")
                .args(["report", "--stdio", "--no-children", "-g", "none"])
                .args(["--percent-limit", "0.5", "-i"])
                .arg(&self.data),
        )?;
        std::fs::write(&self.summary, report)?;
        Ok(self.summary)
    }
}

fn interrupt(pid: i32) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "could not stop perf ({pid})");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_write_count_is_read_from_sysbench_output() -> anyhow::Result<()> {
        let out = "SQL statistics:\n    queries performed:\n        read:  0\n        write:  4000\n        other: 2000\n";
        assert_eq!(super::parse_writes(out)?, 4000);
        assert!(super::parse_writes("nothing").is_err());
        Ok(())
    }
}
