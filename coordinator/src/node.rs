//! One coordinator: the Raft node, the replicated state it applies, the
//! leader-local soft state, and helpers the services share.

use crate::config::CoordinatorConfig;
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::state_machine::{SharedState, StateMachine};
use crate::raft::store::Store;
use crate::raft::{NodeId, Raft};
use crate::reports::ReportBatcher;
use crate::state::{Command, CommandOutcome};
use dts_common::secret::Keyring;
use dts_common::tls::Transport;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, RaftMetrics, ServerState, SnapshotPolicy};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Open(#[from] crate::raft::store::OpenError),
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(String),
    #[error(transparent)]
    Tls(#[from] dts_common::tls::TlsError),
    #[error(transparent)]
    Secret(#[from] dts_common::secret::SecretError),
    #[error(
        "no secrets key ring (--secrets-key): database passwords would be stored in clear; \
         make one with `dtsctl cert secrets-key`, or run --insecure"
    )]
    NoSecretsKey,
}

/// How long a read waits for the quorum to confirm this node still leads.
const LINEARIZABLE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Coordinator {
    pub id: NodeId,
    pub address: String,
    pub config: CoordinatorConfig,
    pub raft: Raft,
    pub state: SharedState,
    pub liveness: Liveness,
    pub reports: ReportBatcher,
    /// Wakes the scheduler driver early (a task was created, a worker joined, ...).
    pub schedule_now: Notify,
    /// The workers whose assignments a committed scheduling plan changed
    /// (see the WatchAssignments RPC).
    pub assignments_changed: tokio::sync::broadcast::Sender<Arc<Vec<String>>>,
    /// How this node serves and calls its peers.
    pub transport: Transport,
    /// Seals database passwords before they are stored (`None`: insecure
    /// and no key ring given: stored as given).
    pub keyring: Option<Keyring>,
    /// Connectivity checks waiting for a worker (see `probes`).
    pub probes: crate::probes::Probes,
}

impl Coordinator {
    pub async fn start(config: CoordinatorConfig) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let transport = Transport::from_settings(&config.tls, config.insecure)?;
        let keyring = match &config.secrets_key {
            Some(path) => Some(Keyring::load(path)?),
            None if config.insecure => None,
            None => return Err(StartError::NoSecretsKey),
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let store = Store::open(&config.data_dir)?;
        let state_machine =
            StateMachine::open(store.clone()).map_err(|e| StartError::Raft(e.to_string()))?;
        let state = state_machine.shared();
        let raft_config = openraft::Config {
            cluster_name: "dts".to_string(),
            heartbeat_interval: config.raft_heartbeat_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_logs),
            max_in_snapshot_log_to_keep: config.snapshot_every_logs / 2,
            ..Default::default()
        };
        let raft_config = Arc::new(
            raft_config
                .validate()
                .map_err(|e| StartError::Raft(e.to_string()))?,
        );
        let raft = Raft::new(
            config.id,
            raft_config,
            NetworkFactory {
                transport: transport.clone(),
            },
            LogStore::new(store),
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let coordinator = Arc::new_cyclic(|weak| Self {
            id: config.id,
            address: config.advertise_address(),
            reports: ReportBatcher::new(
                weak.clone(),
                std::time::Duration::from_millis(config.report_coalesce_ms),
            ),
            config,
            raft,
            state,
            liveness: Liveness::default(),
            schedule_now: Notify::new(),
            assignments_changed: tokio::sync::broadcast::channel(64).0,
            transport,
            keyring,
            probes: crate::probes::Probes::default(),
        });
        coordinator.initialize_if_fresh().await?;
        Ok(coordinator)
    }

    async fn initialize_if_fresh(&self) -> Result<(), StartError> {
        if self.config.join {
            return Ok(());
        }
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let mut members: BTreeMap<NodeId, BasicNode> = self
            .config
            .members()?
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect();
        if members.is_empty() {
            members.insert(self.id, BasicNode::new(self.address.clone()));
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Another initial member got there first: we are already part of it.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(StartError::Raft(e.to_string())),
        }
    }

    pub fn metrics(&self) -> RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The current leader as `(id, address)`, if one is known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.metrics();
        let leader = metrics.current_leader?;
        let address = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())?;
        Some((leader, address))
    }

    /// Addresses of every member, learners included.
    pub fn member_addresses(&self) -> Vec<String> {
        let metrics = self.metrics();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(_, n)| n.addr.clone())
            .collect()
    }

    /// Leader-only calls start here; followers answer with a leader hint.
    pub fn ensure_leader(&self) -> Result<()> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(Error::NotLeader {
                leader: self.leader(),
            })
        }
    }

    /// Reads after this see every write committed before it. A leader
    /// confirms it still leads with a quorum and waits until its state
    /// machine has applied everything committed: a node just elected (after
    /// a whole-cluster restart, say) may not have yet, and would otherwise
    /// answer from an older state. A leader cut off from its quorum answers
    /// "not the leader" after a while instead of waiting for one.
    pub async fn linearizable(&self) -> Result<()> {
        let confirmed =
            tokio::time::timeout(LINEARIZABLE_READ_TIMEOUT, self.raft.ensure_linearizable()).await;
        match confirmed {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::NotLeader {
                leader: self.leader().filter(|(id, _)| *id != self.id),
            }),
        }
    }

    /// Waits until this node's view of the membership (what cluster status
    /// reports) includes the change committed at `log_id`.
    pub async fn membership_visible(&self, log_id: openraft::LogId<NodeId>) -> Result<()> {
        self.raft
            .wait(Some(std::time::Duration::from_secs(10)))
            .metrics(
                |m| m.membership_config.log_id().as_ref() >= Some(&log_id),
                "the membership change to be visible",
            )
            .await
            .map(|_| ())
            .map_err(|e| Error::Raft(e.to_string()))
    }

    /// Proposes a command and waits until it is committed and applied.
    pub async fn write(&self, command: Command) -> Result<CommandOutcome> {
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(Error::NotLeader {
                    leader: forward.leader_id.zip(forward.leader_node.map(|n| n.addr)),
                })
            }
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }
}
