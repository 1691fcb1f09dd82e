//! Worker configuration (precedence: flags > env `DTS_...` > file > defaults).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Stable identity. When absent it is read from (or created in) `data_dir/worker-id`.
    pub id: Option<String>,
    /// What `cluster status` shows as this worker's address; defaults to the host name.
    pub address: Option<String>,
    /// DTS units this worker offers.
    pub du: u32,
    /// `host:port` of any coordinators.
    pub coordinators: Vec<String>,
    pub data_dir: PathBuf,
    /// How often a running task reports progress.
    pub report_interval_ms: u64,
    /// Follow the addresses coordinators advertise (leader hints, new
    /// members). Turn off when this worker reaches them through other
    /// addresses (a proxy, NAT): then only `coordinators` are used.
    pub discover_coordinators: bool,
    /// Length of one minute of a task's retry windows (`retry.*_minutes`).
    /// Only tests shorten it, so that a 10-minute window passes in seconds.
    pub retry_minute_ms: u64,
    /// Serve Prometheus metrics at `http://<this>/metrics`; off when absent.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub log: dts_common::telemetry::LogConfig,
    /// This worker's certificate (role `worker`), its key and the cluster CA.
    pub tls: dts_common::tls::TlsFiles,
    /// Talk to coordinators run with `--insecure`.
    pub insecure: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: None,
            address: None,
            du: 4,
            coordinators: vec!["127.0.0.1:7701".to_string()],
            data_dir: PathBuf::from("dts-data/worker"),
            report_interval_ms: 1000,
            discover_coordinators: true,
            retry_minute_ms: 60_000,
            metrics_listen: None,
            log: dts_common::telemetry::LogConfig::default(),
            tls: dts_common::tls::TlsFiles::default(),
            insecure: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] dts_common::config_file::ConfigFileError),
    #[error("config `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("worker id file {path}: {source}")]
    IdFile {
        path: String,
        source: std::io::Error,
    },
}

impl WorkerConfig {
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        Ok(dts_common::config_file::load(path)?)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.du == 0 {
            return Err(ConfigError::Invalid {
                field: "du",
                reason: "must be at least 1".into(),
            });
        }
        if self.coordinators.iter().all(|c| c.trim().is_empty()) {
            return Err(ConfigError::Invalid {
                field: "coordinators",
                reason: "must list at least one host:port".into(),
            });
        }
        if self.retry_minute_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "retry_minute_ms",
                reason: "must be positive".into(),
            });
        }
        if self.report_interval_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "report_interval_ms",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }

    pub fn report_interval(&self) -> Duration {
        Duration::from_millis(self.report_interval_ms)
    }

    pub fn retry_minute(&self) -> Duration {
        Duration::from_millis(self.retry_minute_ms)
    }

    /// The configured id, or the one this data dir remembers, or a new one saved there.
    pub fn resolve_id(&self) -> Result<String, ConfigError> {
        if let Some(id) = self.id.as_ref().filter(|id| !id.trim().is_empty()) {
            return Ok(id.clone());
        }
        let path = self.data_dir.join("worker-id");
        let io_err = |source| ConfigError::IdFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        std::fs::create_dir_all(&self.data_dir).map_err(io_err)?;
        let id = format!("w-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        std::fs::write(&path, &id).map_err(io_err)?;
        Ok(id)
    }

    pub fn resolve_address(&self) -> String {
        self.address.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown-host".to_string())
        })
    }
}
