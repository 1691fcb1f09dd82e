//! `dtsctl`: the admin client of a dts cluster.

mod cert;
mod commands;
mod render;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Administer a dts cluster: coordinators, workers and synchronization tasks.
#[derive(Debug, Parser)]
#[command(name = "dtsctl", version)]
pub struct Cli {
    /// Any coordinators, as host:port,... (the leader is found from there).
    #[arg(
        long,
        global = true,
        env = "DTS_COORDINATORS",
        default_value = "127.0.0.1:7701"
    )]
    pub coordinators: String,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub tls: dts_common::tls::args::TlsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Coordinators and workers.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Workers.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Synchronization tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Named database endpoints that task files refer to.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// The cluster CA, node certificates and the secrets key ring (local
    /// files; no cluster needed).
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// A new cluster CA: DIR/ca.pem and DIR/ca.key.
    Ca {
        #[arg(long)]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// A certificate signed by the CA in DIR: DIR/NAME.pem and DIR/NAME.key.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// Its holder (the CN): shown in logs of refused calls.
        #[arg(long)]
        name: String,
        /// admin, viewer, worker or peer (a coordinator).
        #[arg(long)]
        role: dts_common::tls::Role,
        /// Extra host names or addresses a coordinator's certificate is valid for.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Adds a new key to a secrets key ring file (created when absent); the
    /// new key seals from the next coordinator restart on.
    SecretsKey {
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Store a connection profile from a file (TOML: name, host, port,
    /// user, password or password_file or password_env, tls).
    Create {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Replace a profile of that name (tasks using it follow).
        #[arg(long)]
        replace: bool,
    },
    /// All profiles.
    List,
    /// One profile (its password is never shown).
    Show { name: String },
    /// Delete a profile no task uses.
    Delete { name: String },
    /// Log in with the profile from a worker: reachability and credentials.
    Test { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Each coordinator (role, term, last log index) and each worker (DUs, state).
    Status,
    /// Add a running coordinator (started with --join) to the cluster.
    AddCoordinator {
        #[arg(long)]
        id: u64,
        /// Its gRPC address, host:port.
        #[arg(long)]
        address: String,
        /// Keep it a non-voting learner.
        #[arg(long)]
        learner: bool,
    },
    /// Remove a coordinator from the cluster.
    RemoveCoordinator {
        #[arg(long)]
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// All workers.
    List,
    /// Move the worker's tasks elsewhere and give it no new ones.
    Drain { id: String },
}

#[derive(Debug, Args)]
pub struct TaskRef {
    /// Task id (or a unique prefix).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Acknowledged {
    #[command(flatten)]
    pub task: TaskRef,
    /// A precheck alert reviewed and acknowledged (repeatable; "all" for
    /// every one): added to the task's ignore_alerts.
    #[arg(long = "ignore-alert")]
    pub ignore_alerts: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task from a task file (TOML).
    Create {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Start it right away.
        #[arg(long)]
        start: bool,
    },
    /// All tasks.
    List,
    /// One task in detail.
    Show {
        #[command(flatten)]
        task: TaskRef,
        /// Refresh every second until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// The conflicts the task settled: counts and the latest ones.
    Conflicts(TaskRef),
    /// Data verification: the last pass's counts and the differing rows.
    Verify {
        #[command(flatten)]
        task: TaskRef,
        /// Run a pass now (the task must be running).
        #[arg(long)]
        run: bool,
        /// Wait until the pass under way (or the one asked for) is done.
        #[arg(long)]
        wait: bool,
        /// Print the statements that would repair the destination.
        #[arg(long)]
        fix: bool,
    },
    /// The prechecks: of a task file, run from here (nothing is written), or
    /// of a task's last start.
    Precheck {
        /// Task id (or a unique prefix): its last start's report.
        id: Option<String>,
        /// A task file to check instead.
        #[arg(short = 'f', long = "file", conflicts_with = "id")]
        file: Option<PathBuf>,
    },
    Start(Acknowledged),
    Pause(TaskRef),
    Resume(Acknowledged),
    Stop(TaskRef),
    Delete(TaskRef),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
