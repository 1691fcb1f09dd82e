//! Coordinator configuration: a typed struct with defaults, loaded from an
//! optional TOML file, overridden by environment (`DTS_...`) and flags
//! (precedence: flags > env > file > defaults; clap reads flag and env together).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Raft node id, unique in the cluster.
    pub id: u64,
    /// Address the gRPC server binds (admin, worker and raft services).
    pub listen: SocketAddr,
    /// Address the others use to reach this node; defaults to `listen`.
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    /// `id=host:port` of every initial voter, this node included. Empty: a
    /// single-node cluster of this node, unless `join` is set.
    pub initial_members: Vec<String>,
    /// Start empty and wait to be added with `dtsctl cluster add-coordinator`.
    pub join: bool,
    /// A worker not heard from for this long is declared lost.
    pub worker_lease_ms: u64,
    /// How often workers heartbeat.
    pub worker_heartbeat_ms: u64,
    pub raft_heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log before it) after this many entries.
    pub snapshot_every_logs: u64,
    /// Progress reports arriving within this window share one Raft entry.
    pub report_coalesce_ms: u64,
    /// Serve Prometheus metrics at `http://<this>/metrics`; off when absent.
    pub metrics_listen: Option<SocketAddr>,
    pub log: dts_common::telemetry::LogConfig,
    /// This node's certificate, its key and the cluster CA (mTLS on every hop).
    pub tls: dts_common::tls::TlsFiles,
    /// Serve and call in plaintext, without authentication: every caller
    /// is an admin. Only for a cluster no one else can reach.
    pub insecure: bool,
    /// Key ring that seals database passwords before they enter the Raft
    /// log (see `dts_common::secret`); needed unless `insecure`.
    pub secrets_key: Option<PathBuf>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            id: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 7701)),
            advertise: None,
            data_dir: PathBuf::from("dts-data/coordinator"),
            initial_members: Vec::new(),
            join: false,
            worker_lease_ms: 3000,
            worker_heartbeat_ms: 500,
            raft_heartbeat_ms: 150,
            election_timeout_min_ms: 750,
            election_timeout_max_ms: 1500,
            snapshot_every_logs: 1000,
            report_coalesce_ms: 50,
            metrics_listen: None,
            log: dts_common::telemetry::LogConfig::default(),
            tls: dts_common::tls::TlsFiles::default(),
            insecure: false,
            secrets_key: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] dts_common::config_file::ConfigFileError),
    #[error("config `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl CoordinatorConfig {
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        Ok(dts_common::config_file::load(path)?)
    }

    pub fn advertise_address(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    pub fn worker_lease(&self) -> Duration {
        Duration::from_millis(self.worker_lease_ms)
    }

    /// Parsed `initial_members`.
    pub fn members(&self) -> Result<BTreeMap<u64, String>, ConfigError> {
        let mut members = BTreeMap::new();
        for entry in &self.initial_members {
            let (id, addr) = entry.split_once('=').ok_or_else(|| ConfigError::Invalid {
                field: "initial_members",
                reason: format!("`{entry}` is not of the form id=host:port"),
            })?;
            let id: u64 = id.trim().parse().map_err(|_| ConfigError::Invalid {
                field: "initial_members",
                reason: format!("`{id}` in `{entry}` is not a node id"),
            })?;
            members.insert(id, addr.trim().to_string());
        }
        if !members.is_empty() && !members.contains_key(&self.id) {
            return Err(ConfigError::Invalid {
                field: "initial_members",
                reason: format!("does not list this node (id {})", self.id),
            });
        }
        Ok(members)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.members()?;
        if self.worker_heartbeat_ms == 0 || self.worker_heartbeat_ms * 2 > self.worker_lease_ms {
            return Err(ConfigError::Invalid {
                field: "worker_heartbeat_ms",
                reason: "must be positive and at most half of worker_lease_ms".into(),
            });
        }
        if self.election_timeout_min_ms <= self.raft_heartbeat_ms * 2
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return Err(ConfigError::Invalid {
                field: "election_timeout_min_ms",
                reason:
                    "need raft_heartbeat_ms * 2 < election_timeout_min_ms < election_timeout_max_ms"
                        .into(),
            });
        }
        Ok(())
    }
}
