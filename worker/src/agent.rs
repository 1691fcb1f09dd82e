//! The worker's control loop: register, heartbeat, reconcile the runtimes it
//! runs with the assignments the leader returns, and fence itself off when the
//! coordinators have been out of reach for longer than the lease. A watch on
//! the leader makes it heartbeat at once when its assignments change.

use crate::config::WorkerConfig;
use crate::runtime::{self, RuntimeContext, RuntimeHandle};
use dts_common::client::CallPolicy;
use dts_common::tls::{Role, Transport};
use dts_common::CoordinatorClient;
use dts_proto::pb;
use dts_proto::pb::worker_control_client::WorkerControlClient;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Client(#[from] dts_common::ClientError),
    #[error(transparent)]
    Tls(#[from] dts_common::tls::TlsError),
    #[error("the certificate is of {0}; a worker needs one of role `worker` (dtsctl cert issue --role worker)")]
    NotWorkerCertificate(dts_common::tls::Caller),
}

const WATCHDOG_TICK: Duration = Duration::from_millis(50);
const REGISTER_BACKOFF: Duration = Duration::from_millis(300);
/// Before watching the leader again after a watch ended (the leader
/// changed) or could not start; heartbeats carry on meanwhile.
const WATCH_RETRY: Duration = Duration::from_secs(1);

struct Agent {
    worker_id: String,
    address: String,
    du: u32,
    client: Arc<CoordinatorClient>,
    ctx: Arc<RuntimeContext>,
    runtimes: Mutex<HashMap<String, RuntimeHandle>>,
    /// (task, epoch) pairs the coordinator fenced off: never restarted.
    fenced: Mutex<HashSet<(String, u64)>>,
    /// Until when the last acknowledged heartbeat lets this worker run tasks.
    lease_until: Mutex<Option<Instant>>,
    /// Set when the leader says this worker's assignments changed.
    heartbeat_now: tokio::sync::Notify,
}

/// Runs the worker until `shutdown` resolves, then stops every task.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    config.validate()?;
    let worker_id = config.resolve_id()?;
    // Heartbeats are short and frequent: fail fast and try again next beat.
    let policy = CallPolicy {
        deadline: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(1),
        backoff: Duration::from_millis(100),
    };
    let transport = Transport::from_settings(&config.tls, config.insecure)?;
    if let Transport::Tls(material) = &transport {
        if material.own.role != Role::Worker {
            return Err(AgentError::NotWorkerCertificate(material.own.clone()));
        }
    }
    let mut client = CoordinatorClient::new(&config.coordinators, policy, transport)?;
    if !config.discover_coordinators {
        client = client.without_discovery();
    }
    let client = Arc::new(client);
    let ctx = Arc::new(RuntimeContext {
        worker_id: worker_id.clone(),
        client: client.clone(),
        report_interval: config.report_interval(),
        retry_minute: config.retry_minute(),
    });
    let agent = Arc::new(Agent {
        address: config.resolve_address(),
        du: config.du,
        worker_id,
        client,
        ctx,
        runtimes: Mutex::new(HashMap::new()),
        fenced: Mutex::new(HashSet::new()),
        lease_until: Mutex::new(None),
        heartbeat_now: tokio::sync::Notify::new(),
    });
    info!(worker_id = %agent.worker_id, du = agent.du, "worker starting");
    let watchdog = tokio::spawn(watchdog(agent.clone()));
    let watch = tokio::spawn(watch_assignments(agent.clone()));
    tokio::select! {
        _ = shutdown => {}
        _ = control_loop(agent.clone()) => {}
    }
    watchdog.abort();
    watch.abort();
    let handles: Vec<RuntimeHandle> = agent.lock_runtimes().drain().map(|(_, h)| h).collect();
    for handle in handles {
        handle.stop().await;
    }
    info!(worker_id = %agent.worker_id, "worker stopped");
    Ok(())
}

impl Agent {
    fn lock_runtimes(&self) -> std::sync::MutexGuard<'_, HashMap<String, RuntimeHandle>> {
        self.runtimes.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn register(&self) -> Duration {
        loop {
            let request = pb::RegisterRequest {
                worker_id: self.worker_id.clone(),
                address: self.address.clone(),
                du: self.du,
            };
            let result = self
                .client
                .call(|channel| {
                    let request = request.clone();
                    async move { WorkerControlClient::new(channel).register(request).await }
                })
                .await;
            match result {
                Ok(response) => {
                    self.client.learn(&response.coordinators);
                    info!(worker_id = %self.worker_id, leader = %self.client.current_address(), "registered");
                    return Duration::from_millis(response.heartbeat_interval_ms.max(50));
                }
                Err(status) => {
                    warn!(error = %status.message(), "cannot register yet; retrying");
                    tokio::time::sleep(REGISTER_BACKOFF).await;
                }
            }
        }
    }

    /// The runtimes still alive, forgetting (and fencing) those that ended on their own.
    fn running(&self) -> Vec<pb::RunningTask> {
        let mut runtimes = self.lock_runtimes();
        let finished: Vec<String> = runtimes
            .iter()
            .filter(|(_, h)| h.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in finished {
            if let Some(handle) = runtimes.remove(&id) {
                self.fenced
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((handle.task_id.clone(), handle.epoch));
            }
        }
        runtimes
            .values()
            .map(|h| pb::RunningTask {
                task_id: h.task_id.clone(),
                epoch: h.epoch,
                phase: h.phase(),
            })
            .collect()
    }

    /// Makes the set of runtimes equal to `assignments`.
    async fn reconcile(&self, assignments: Vec<pb::Assignment>) {
        let wanted: HashMap<String, pb::Assignment> = assignments
            .into_iter()
            .map(|a| (a.task_id.clone(), a))
            .collect();
        let to_stop: Vec<RuntimeHandle> = {
            let mut runtimes = self.lock_runtimes();
            let stale: Vec<String> = runtimes
                .iter()
                .filter(|(id, h)| wanted.get(*id).is_none_or(|a| a.epoch != h.epoch))
                .map(|(id, _)| id.clone())
                .collect();
            stale.iter().filter_map(|id| runtimes.remove(id)).collect()
        };
        for handle in to_stop {
            info!(task_id = %handle.task_id, epoch = handle.epoch, "task no longer assigned here; stopping");
            handle.stop().await;
        }
        let fenced = self
            .fenced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut runtimes = self.lock_runtimes();
        for (id, assignment) in wanted {
            if let Some(running) = runtimes.get(&id) {
                running.request_verify(assignment.verify_requested);
                continue;
            }
            if fenced.contains(&(id.clone(), assignment.epoch)) {
                continue;
            }
            info!(task_id = %id, epoch = assignment.epoch, "starting assigned task");
            runtimes.insert(id, runtime::spawn(self.ctx.clone(), assignment));
        }
    }
}

async fn control_loop(agent: Arc<Agent>) {
    let mut interval = agent.register().await;
    loop {
        let request = pb::HeartbeatRequest {
            worker_id: agent.worker_id.clone(),
            running: agent.running(),
        };
        let sent_at = Instant::now();
        let result = agent
            .client
            .call(|channel| {
                let request = request.clone();
                async move { WorkerControlClient::new(channel).heartbeat(request).await }
            })
            .await;
        match result {
            Ok(response) if response.reregister => {
                info!("the leader does not know this worker as online; registering again");
                interval = agent.register().await;
                continue;
            }
            Ok(response) => {
                agent.client.learn(&response.coordinators);
                // The leader counts the lease from when it received this beat, which is
                // after `sent_at`: expiring here first keeps us from outliving it.
                let lease = Duration::from_millis(response.lease_ms);
                *agent.lease_until.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(sent_at + lease);
                for probe in response.probes {
                    tokio::spawn(run_probe(agent.clone(), probe));
                }
                agent.reconcile(response.assignments).await;
            }
            Err(status) => warn!(error = %status.message(), "heartbeat failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep_until(sent_at + interval) => {}
            _ = agent.heartbeat_now.notified() => {}
        }
    }
}

/// Runs a connectivity check the leader handed out and reports what it found.
async fn run_probe(agent: Arc<Agent>, probe: pb::Probe) {
    let items = match serde_json::from_str::<dts_common::spec::Endpoint>(&probe.endpoint_json) {
        Ok(endpoint) => crate::probe::check(&endpoint).await,
        Err(e) => vec![pb::ProbeItem {
            name: "profile".into(),
            passed: false,
            detail: format!("unreadable endpoint from the coordinator: {e}"),
        }],
    };
    let result = pb::ProbeResult {
        id: probe.id,
        worker_id: agent.worker_id.clone(),
        items,
    };
    let sent = agent
        .client
        .call(|channel| {
            let result = result.clone();
            async move { WorkerControlClient::new(channel).report_probe(result).await }
        })
        .await;
    if let Err(status) = sent {
        warn!(probe = probe.id, error = %status.message(), "could not report a connection test");
    }
}

/// Keeps a watch open on the leader and wakes the control loop whenever it
/// fires: a task created or moved here starts without waiting for a beat.
async fn watch_assignments(agent: Arc<Agent>) {
    loop {
        let request = pb::WatchAssignmentsRequest {
            worker_id: agent.worker_id.clone(),
        };
        let watch = agent
            .client
            .call(|channel| {
                let request = request.clone();
                async move {
                    WorkerControlClient::new(channel)
                        .watch_assignments(request)
                        .await
                }
            })
            .await;
        if let Ok(mut changes) = watch {
            // A change made while no watch was open is picked up now.
            agent.heartbeat_now.notify_one();
            while let Ok(Some(_)) = changes.message().await {
                agent.heartbeat_now.notify_one();
            }
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}

/// Stops every task once the lease runs out without a fresh heartbeat.
async fn watchdog(agent: Arc<Agent>) {
    loop {
        tokio::time::sleep(WATCHDOG_TICK).await;
        let expired = agent
            .lease_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| Instant::now() >= until);
        if !expired {
            continue;
        }
        let fenced: Vec<RuntimeHandle> = agent.lock_runtimes().drain().map(|(_, h)| h).collect();
        if fenced.is_empty() {
            continue;
        }
        warn!(
            tasks = fenced.len(),
            "coordinators unreachable for longer than the lease; stopping all tasks"
        );
        for handle in fenced {
            handle.cancel();
        }
    }
}
