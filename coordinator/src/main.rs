//! `dts-coordinator`: one node of the coordinator cluster.

use clap::Parser;
use dts_coordinator::config::CoordinatorConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// A node of the dts coordinator cluster (Raft on sled).
///
/// Settings come from flags, then `DTS_*` environment variables, then
/// `--config FILE` (TOML with the same names in snake_case), then defaults.
#[derive(Debug, Parser)]
#[command(name = "dts-coordinator", version)]
struct Args {
    /// TOML config file.
    #[arg(long, env = "DTS_CONFIG")]
    config: Option<PathBuf>,
    /// Raft node id, unique in the cluster [default: 1].
    #[arg(long, env = "DTS_NODE_ID")]
    id: Option<u64>,
    /// gRPC listen address [default: 127.0.0.1:7701].
    #[arg(long, env = "DTS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address peers, workers and dtsctl use to reach this node [default: --listen].
    #[arg(long, env = "DTS_ADVERTISE")]
    advertise: Option<String>,
    /// Directory of the Raft store [default: dts-data/coordinator].
    #[arg(long, env = "DTS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Initial voters as `id=host:port,...` (this node included). Without it a
    /// fresh node forms a single-node cluster, unless --join is given.
    #[arg(long, env = "DTS_INITIAL_MEMBERS", value_delimiter = ',')]
    initial_members: Option<Vec<String>>,
    /// Start empty and wait for `dtsctl cluster add-coordinator`.
    #[arg(long, env = "DTS_JOIN")]
    join: bool,
    /// Worker lease in milliseconds [default: 3000].
    #[arg(long, env = "DTS_WORKER_LEASE_MS")]
    worker_lease_ms: Option<u64>,
    /// Worker heartbeat interval in milliseconds [default: 500].
    #[arg(long, env = "DTS_WORKER_HEARTBEAT_MS")]
    worker_heartbeat_ms: Option<u64>,
    /// Build a Raft snapshot every this many log entries [default: 1000].
    #[arg(long, env = "DTS_SNAPSHOT_EVERY_LOGS")]
    snapshot_every_logs: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics [default: off].
    #[arg(long, env = "DTS_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Write rotated log files here instead of stderr.
    #[arg(long, env = "DTS_LOG_DIR")]
    log_dir: Option<PathBuf>,
    #[command(flatten)]
    tls: dts_common::tls::args::TlsArgs,
    /// Key ring sealing database passwords at rest (`dtsctl cert secrets-key`).
    #[arg(long, env = "DTS_SECRETS_KEY")]
    secrets_key: Option<PathBuf>,
}

impl Args {
    fn into_config(self) -> Result<CoordinatorConfig, dts_coordinator::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => CoordinatorConfig::from_file(path)?,
            None => CoordinatorConfig::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = self.$field { config.$field = v; } )*};
        }
        set!(
            id,
            listen,
            data_dir,
            initial_members,
            worker_lease_ms,
            worker_heartbeat_ms,
            snapshot_every_logs
        );
        if self.advertise.is_some() {
            config.advertise = self.advertise;
        }
        config.join |= self.join;
        if self.metrics_listen.is_some() {
            config.metrics_listen = self.metrics_listen;
        }
        if self.log_dir.is_some() {
            config.log.dir = self.log_dir;
        }
        if self.secrets_key.is_some() {
            config.secrets_key = self.secrets_key;
        }
        self.tls.apply(&mut config.tls, &mut config.insecure);
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dts-coordinator: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = dts_common::telemetry::init(&config.log, "dts-coordinator") {
        eprintln!("dts-coordinator: {e}");
        return ExitCode::from(2);
    }
    if let Some(address) = config.metrics_listen {
        if let Err(e) = dts_common::metrics::serve(address) {
            eprintln!("dts-coordinator: {e}");
            return ExitCode::from(2);
        }
    }
    match dts_coordinator::server::serve(config, dts_common::signal::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dts-coordinator: {e}");
            ExitCode::FAILURE
        }
    }
}
