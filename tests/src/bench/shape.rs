//! Where the processes of a timed run sit on the machine's cores.
//!
//! In production the source, the destination and the workers are different
//! machines. On one machine, a copier that leaves the destination more CPU
//! wins twice: the wall clock of the shared shape hides what it saves. The
//! pinned shape gives the destination server a core of its own and puts
//! everything else (the source, the dts cluster, mydumper/myloader, the
//! mariadb client, sysbench, this bench) on the others, for every contender
//! alike; what a contender costs the destination then shows as time.

use crate::MariaDb;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The destination on the last core, the rest on the others.
    Pinned,
    /// Every process may run on every core (the scheduler decides).
    Shared,
}

impl Shape {
    /// Both shapes when the machine can pin (at least 2 cores), pinned first.
    pub fn defaults() -> Vec<Shape> {
        if cores() >= 2 {
            vec![Shape::Pinned, Shape::Shared]
        } else {
            vec![Shape::Shared]
        }
    }

    pub fn parse(name: &str) -> anyhow::Result<Shape> {
        match name {
            "pinned" => {
                anyhow::ensure!(
                    cores() >= 2,
                    "--shape pinned needs at least 2 cores; this machine has {}",
                    cores()
                );
                Ok(Shape::Pinned)
            }
            "shared" => Ok(Shape::Shared),
            other => anyhow::bail!("--shape: `{other}` is neither `pinned` nor `shared`"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shape::Pinned => "pinned",
            Shape::Shared => "shared",
        }
    }

    /// A scenario's name in this shape, as the report shows it.
    pub fn scenario(self, scenario: &str) -> String {
        format!("{scenario} ({})", self.name())
    }

    pub fn describe(self) -> String {
        let last = cores() - 1;
        match self {
            Shape::Pinned => format!(
                "destination server on CPU {last}; source, dts, peers' tools and the bench on CPU {}",
                cpu_list(0, last.saturating_sub(1))
            ),
            Shape::Shared => format!("every process on CPU {}", cpu_list(0, last)),
        }
    }

    /// Puts this process (all its threads, and so every process it starts
    /// from now on) on the cores the shape gives to everything but the
    /// destination.
    pub fn enter(self) -> anyhow::Result<()> {
        let last = cores() - 1;
        let others = match self {
            Shape::Pinned => cpu_list(0, last.saturating_sub(1)),
            Shape::Shared => cpu_list(0, last),
        };
        set_affinity(std::process::id() as i32, &others)
    }

    /// Moves a destination server (all its threads; the threads it starts
    /// later inherit it) onto its own core in the pinned shape.
    pub fn place_destination(self, server: &MariaDb) -> anyhow::Result<()> {
        if self == Shape::Shared {
            return Ok(());
        }
        let pid = server
            .pid()
            .ok_or_else(|| anyhow::anyhow!("the destination server has no pid to pin"))?;
        set_affinity(pid, &(cores() - 1).to_string())
    }
}

/// `first-last` in taskset's notation (`first` alone when they are one).
fn cpu_list(first: usize, last: usize) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

fn set_affinity(pid: i32, cpus: &str) -> anyhow::Result<()> {
    let output = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .map_err(|e| anyhow::anyhow!("taskset (util-linux) could not start: {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "taskset -a -p -c {cpus} {pid} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// The cores this machine has (not the ones this process may use: that
/// changes once a shape is entered).
pub fn cores() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
        .max(1)
}
