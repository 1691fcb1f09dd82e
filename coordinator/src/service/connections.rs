//! Admin's connection-profile calls: store (password sealed), list, show,
//! delete (refused while a task uses the profile) and test from a worker.

use crate::error::{Error, Result};
use crate::node::Coordinator;
use crate::state::{ClusterState, Command, ConnectionProfile};
use dts_common::model::WorkerState;
use dts_common::spec::Endpoint;
use dts_proto::pb;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// How long `connection test` waits for the worker's answer (a login that
/// times out takes 10 s on the worker).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn create(
    node: &Coordinator,
    req: pb::CreateConnectionRequest,
) -> Result<pb::ConnectionInfo> {
    node.ensure_leader()?;
    let (name, mut endpoint) = dts_common::connection::profile_from_toml(&req.profile_toml)?;
    if !req.replace && node.state.read().state.connections.contains_key(&name) {
        return Err(Error::FailedPrecondition(format!(
            "connection `{name}` exists; give --replace to replace it"
        )));
    }
    crate::secrets::seal_endpoint(node.keyring.as_ref(), &mut endpoint)
        .map_err(|e| Error::Unavailable(format!("sealing the password: {e}")))?;
    node.write(Command::PutConnection {
        profile: ConnectionProfile {
            name: name.clone(),
            endpoint,
            updated_at_ms: dts_common::time::now_ms(),
        },
    })
    .await?;
    info!(connection = %name, replaced = req.replace, "connection profile stored");
    get(node, &name)
}

pub fn list(node: &Coordinator) -> pb::ListConnectionsResponse {
    let data = node.state.read();
    pb::ListConnectionsResponse {
        connections: data
            .state
            .connections
            .values()
            .map(|p| info_of(&data.state, p))
            .collect(),
    }
}

pub fn get(node: &Coordinator, name: &str) -> Result<pb::ConnectionInfo> {
    let data = node.state.read();
    let profile = lookup(&data.state, name)?;
    Ok(info_of(&data.state, profile))
}

pub async fn delete(node: &Coordinator, name: &str) -> Result<pb::DeleteConnectionResponse> {
    node.ensure_leader()?;
    {
        let data = node.state.read();
        lookup(&data.state, name)?;
        let users = data.state.tasks_using(name);
        if !users.is_empty() {
            let named: Vec<String> = users
                .iter()
                .map(|t| format!("{} ({})", t.name, t.id))
                .collect();
            return Err(Error::FailedPrecondition(format!(
                "connection `{name}` is used by task {}; delete the task first",
                named.join(", task ")
            )));
        }
    }
    node.write(Command::DeleteConnection {
        name: name.to_string(),
    })
    .await?;
    info!(connection = %name, "connection profile deleted");
    Ok(pb::DeleteConnectionResponse {
        name: name.to_string(),
    })
}

/// Hands the profile, password opened, to one online worker and waits for
/// what its login found.
pub async fn test(node: &Arc<Coordinator>, name: &str) -> Result<pb::TestConnectionResponse> {
    node.ensure_leader()?;
    let (worker, mut endpoint) = {
        let data = node.state.read();
        let profile = lookup(&data.state, name)?;
        let worker = data
            .state
            .workers
            .values()
            .filter(|w| w.state == WorkerState::Online)
            .find(|w| node.liveness.last_seen(&w.id).is_some())
            .map(|w| w.id.clone())
            .ok_or_else(|| {
                Error::FailedPrecondition(
                    "no online worker to run the check from; start a worker first".into(),
                )
            })?;
        (worker, profile.endpoint.clone())
    };
    crate::secrets::open_endpoint(node.keyring.as_ref(), &mut endpoint);
    let endpoint_json = serde_json::to_string(&endpoint)
        .map_err(|e| Error::Unavailable(format!("encoding the probe: {e}")))?;
    let mut ticket = node.probes.submit(&worker, endpoint_json);
    // Its next heartbeat carries the probe: ask for that heartbeat now.
    let _ = node
        .assignments_changed
        .send(Arc::new(vec![worker.clone()]));
    let result = tokio::time::timeout(PROBE_TIMEOUT, &mut ticket.result)
        .await
        .map_err(|_| {
            Error::Unavailable(format!(
                "worker {worker} did not answer the check within {} s",
                PROBE_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|_| Error::Unavailable("the check was withdrawn".into()))?;
    info!(connection = %name, worker = %worker, "connection tested");
    Ok(pb::TestConnectionResponse {
        ok: !result.items.is_empty() && result.items.iter().all(|i| i.passed),
        worker_id: worker,
        items: result.items,
    })
}

fn lookup<'a>(state: &'a ClusterState, name: &str) -> Result<&'a ConnectionProfile> {
    state.connections.get(name).ok_or_else(|| Error::NotFound {
        kind: "connection",
        id: name.to_string(),
    })
}

fn info_of(state: &ClusterState, profile: &ConnectionProfile) -> pb::ConnectionInfo {
    let endpoint: &Endpoint = &profile.endpoint;
    let password_source = if let Some(path) = &endpoint.password_file {
        format!("file {path}")
    } else if let Some(name) = &endpoint.password_env {
        format!("env {name}")
    } else if endpoint.password.is_empty() {
        "none".to_string()
    } else if dts_common::secret::Keyring::is_sealed(&endpoint.password) {
        "sealed".to_string()
    } else {
        "stored (no key ring)".to_string()
    };
    pb::ConnectionInfo {
        name: profile.name.clone(),
        host: endpoint.host.clone(),
        port: u32::from(endpoint.port),
        user: endpoint.user.clone(),
        password_source,
        tls: endpoint.tls.enabled,
        used_by: state
            .tasks_using(&profile.name)
            .iter()
            .map(|t| format!("{} ({})", t.id, t.name))
            .collect(),
        updated_at_ms: profile.updated_at_ms,
    }
}
