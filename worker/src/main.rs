//! `dts-worker`: runs synchronization tasks for a dts cluster.

use clap::Parser;
use dts_worker::config::WorkerConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// A dts worker. Settings come from flags, then `DTS_*` environment variables,
/// then `--config FILE` (TOML, same names in snake_case), then defaults.
#[derive(Debug, Parser)]
#[command(name = "dts-worker", version)]
struct Args {
    /// TOML config file.
    #[arg(long, env = "DTS_CONFIG")]
    config: Option<PathBuf>,
    /// Stable worker id [default: remembered in DATA_DIR/worker-id].
    #[arg(long, env = "DTS_WORKER_ID")]
    id: Option<String>,
    /// Address shown for this worker [default: host name].
    #[arg(long, env = "DTS_WORKER_ADDRESS")]
    address: Option<String>,
    /// DTS units this worker offers [default: 4].
    #[arg(long, env = "DTS_DU")]
    du: Option<u32>,
    /// Coordinators as host:port,... [default: 127.0.0.1:7701].
    #[arg(long, env = "DTS_COORDINATORS", value_delimiter = ',')]
    coordinators: Option<Vec<String>>,
    /// Data directory [default: dts-data/worker].
    #[arg(long, env = "DTS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Progress report interval in milliseconds [default: 1000].
    #[arg(long, env = "DTS_REPORT_INTERVAL_MS")]
    report_interval_ms: Option<u64>,
}

impl Args {
    fn into_config(self) -> Result<WorkerConfig, dts_worker::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => WorkerConfig::from_file(path)?,
            None => WorkerConfig::default(),
        };
        if self.id.is_some() {
            config.id = self.id;
        }
        if self.address.is_some() {
            config.address = self.address;
        }
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = self.$field { config.$field = v; } )*};
        }
        set!(du, coordinators, data_dir, report_interval_ms);
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    dts_common::telemetry::init();
    let config = match Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dts-worker: {e}");
            return ExitCode::from(2);
        }
    };
    match dts_worker::agent::run(config, dts_common::signal::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dts-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
