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
    /// Follow the addresses coordinators advertise; false keeps to
    /// --coordinators (workers behind a proxy or NAT) [default: true].
    #[arg(long, env = "DTS_DISCOVER_COORDINATORS", value_name = "BOOL")]
    discover_coordinators: Option<bool>,
    /// Length of a retry-window minute in ms; tests shorten it [default: 60000].
    #[arg(long, env = "DTS_RETRY_MINUTE_MS")]
    retry_minute_ms: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics [default: off].
    #[arg(long, env = "DTS_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Write rotated log files here instead of stderr.
    #[arg(long, env = "DTS_LOG_DIR")]
    log_dir: Option<PathBuf>,
    #[command(flatten)]
    tls: dts_common::tls::args::TlsArgs,
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
        set!(
            du,
            coordinators,
            data_dir,
            report_interval_ms,
            discover_coordinators,
            retry_minute_ms
        );
        if self.metrics_listen.is_some() {
            config.metrics_listen = self.metrics_listen;
        }
        if self.log_dir.is_some() {
            config.log.dir = self.log_dir;
        }
        self.tls.apply(&mut config.tls, &mut config.insecure);
        Ok(config)
    }
}

fn main() -> ExitCode {
    // Before the runtime's threads exist: it sets environment variables.
    dts_worker::allocator::bound_driver_buffers();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dts-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let config = match Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dts-worker: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = dts_common::telemetry::init(&config.log, "dts-worker") {
        eprintln!("dts-worker: {e}");
        return ExitCode::from(2);
    }
    if let Some(address) = config.metrics_listen {
        if let Err(e) = dts_common::metrics::serve(address) {
            eprintln!("dts-worker: {e}");
            return ExitCode::from(2);
        }
    }
    match dts_worker::agent::run(config, dts_common::signal::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dts-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
