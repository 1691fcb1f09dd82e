//! One way to call the coordinators from anywhere (dtsctl, workers, tests):
//! follow the leader hint a follower gives, fall through to the next address
//! when a node is down or has no leader yet, and give up at a deadline.

use crate::leader_hint::leader_hint;
use crate::tls::Transport;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no coordinator address given (use --coordinators or DTS_COORDINATORS)")]
    NoEndpoints,
    #[error("invalid coordinator address `{address}`: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("TLS for `{address}`: {reason}")]
    Tls { address: String, reason: String },
}

/// Tunables of the retry loop.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Total time one `call` may take, retries included.
    pub deadline: Duration,
    /// Time one attempt may take.
    pub attempt_timeout: Duration,
    /// Pause before retrying when no node could serve the call.
    pub backoff: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(100),
        }
    }
}

struct Node {
    address: String,
    channel: Channel,
}

/// A client of the coordinator cluster. Cheap to share behind an `Arc`.
pub struct CoordinatorClient {
    nodes: Mutex<Vec<Node>>,
    /// Index into `nodes` of the last node that served a call.
    preferred: Mutex<usize>,
    policy: CallPolicy,
    /// Follow addresses the cluster advertises (leader hints, membership).
    /// Off when this process reaches the coordinators through other addresses
    /// than the ones they advertise (a proxy, NAT, a load balancer).
    discover: bool,
    transport: Transport,
}

impl CoordinatorClient {
    /// `addresses` are `host:port` of any coordinators; the leader need not be among them.
    pub fn new(
        addresses: &[String],
        policy: CallPolicy,
        transport: Transport,
    ) -> Result<Self, ClientError> {
        let mut nodes = Vec::new();
        for address in addresses.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
            nodes.push(Node {
                address: address.to_string(),
                channel: lazy_channel(address, policy.attempt_timeout, &transport)?,
            });
        }
        if nodes.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        Ok(Self {
            nodes: Mutex::new(nodes),
            preferred: Mutex::new(0),
            policy,
            discover: true,
            transport,
        })
    }

    /// Keeps to the given addresses: leader hints and learned members are not
    /// followed; a follower's answer makes the call try the next given address.
    pub fn without_discovery(mut self) -> Self {
        self.discover = false;
        self
    }

    /// Parses a comma-separated address list.
    pub fn from_list(
        list: &str,
        policy: CallPolicy,
        transport: Transport,
    ) -> Result<Self, ClientError> {
        let addresses: Vec<String> = list.split(',').map(str::to_string).collect();
        Self::new(&addresses, policy, transport)
    }

    /// Runs `attempt` against the leader, wherever it is. Errors other than
    /// "not the leader / unreachable" are returned at once: they are answers.
    pub async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T, Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.policy.deadline;
        let mut tried_without_leader = 0usize;
        loop {
            let (index, channel) = self.pick();
            let outcome = attempt(channel).await;
            let status = match outcome {
                Ok(response) => {
                    self.prefer(index);
                    return Ok(response.into_inner());
                }
                Err(status) => status,
            };
            if !is_retryable(&status) || Instant::now() >= deadline {
                return Err(status);
            }
            if let Some(leader) = leader_hint(&status).filter(|_| self.discover) {
                self.prefer_address(&leader)?;
                continue;
            }
            // Down, or no leader yet: try the next node; back off after a full round.
            self.prefer(index + 1);
            tried_without_leader += 1;
            if tried_without_leader.is_multiple_of(self.node_count()) {
                tokio::time::sleep(self.policy.backoff).await;
            }
        }
    }

    fn node_count(&self) -> usize {
        self.nodes.lock().map(|n| n.len()).unwrap_or(1).max(1)
    }

    fn pick(&self) -> (usize, Channel) {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let preferred = *self.preferred.lock().unwrap_or_else(|p| p.into_inner());
        let index = preferred % nodes.len();
        (index, nodes[index].channel.clone())
    }

    fn prefer(&self, index: usize) {
        let len = self.node_count();
        *self.preferred.lock().unwrap_or_else(|p| p.into_inner()) = index % len;
    }

    /// Makes `address` the preferred node, adding it when the leader is a node
    /// the user did not list (added to the cluster later).
    fn prefer_address(&self, address: &str) -> Result<(), Status> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let index = match nodes.iter().position(|n| n.address == address) {
            Some(i) => i,
            None => {
                let channel = lazy_channel(address, self.policy.attempt_timeout, &self.transport)
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                nodes.push(Node {
                    address: address.to_string(),
                    channel,
                });
                nodes.len() - 1
            }
        };
        *self.preferred.lock().unwrap_or_else(|p| p.into_inner()) = index;
        Ok(())
    }

    /// Adds coordinator addresses learned from the cluster (membership changes,
    /// nodes the user did not list), keeping the preferred node as it is.
    pub fn learn(&self, addresses: &[String]) {
        if !self.discover {
            return;
        }
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        for address in addresses {
            if nodes.iter().any(|n| &n.address == address) {
                continue;
            }
            if let Ok(channel) = lazy_channel(address, self.policy.attempt_timeout, &self.transport)
            {
                nodes.push(Node {
                    address: address.clone(),
                    channel,
                });
            }
        }
    }

    /// The address of the node that served the last call (the leader, usually).
    pub fn current_address(&self) -> String {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let preferred = *self.preferred.lock().unwrap_or_else(|p| p.into_inner());
        nodes[preferred % nodes.len()].address.clone()
    }
}

/// A channel to one node, connecting on first use.
pub fn lazy_channel(
    address: &str,
    timeout: Duration,
    transport: &Transport,
) -> Result<Channel, ClientError> {
    let bare = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address);
    let uri = format!("{}://{bare}", transport.scheme());
    let mut endpoint = Endpoint::from_shared(uri).map_err(|e| ClientError::BadAddress {
        address: address.to_string(),
        reason: e.to_string(),
    })?;
    if let Some(tls) = transport.client_config() {
        endpoint = endpoint.tls_config(tls).map_err(|e| ClientError::Tls {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(1))
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Unavailable covers "not the leader", "no leader yet" and transport failures.
fn is_retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable)
}
