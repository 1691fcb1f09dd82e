//! The service workers call: register, heartbeat (which returns assignments),
//! progress reports (fenced by epoch), and a watch that tells a worker when
//! to heartbeat early.

use crate::auth::caller_of_request;
use crate::error::{Error, Result};
use crate::liveness::RunningTask;
use crate::node::Coordinator;
use crate::reports::stale;
use crate::service::convert::{checkpoint_from_pb, checkpoint_to_pb};
use crate::state::ConnectionProfile;
use crate::state::{is_current_owner, Command, ProgressReport};
use dts_common::model::WorkerState;
use dts_common::tls::{Caller, Role};
use dts_proto::pb;
use dts_proto::pb::worker_control_server::WorkerControl;
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::{info, instrument};
use uuid::Uuid;

pub struct WorkerService {
    pub node: Arc<Coordinator>,
}

impl WorkerService {
    /// The spec as its worker needs it: passwords opened. Only this reply,
    /// to the task's owner over mTLS, carries them in clear.
    /// A side filled from a connection profile follows the profile as it
    /// is now.
    fn spec_for_worker(
        &self,
        spec: &dts_common::TaskSpec,
        connections: &BTreeMap<String, ConnectionProfile>,
    ) -> dts_common::TaskSpec {
        let mut spec = spec.clone();
        for endpoint in [&mut spec.source, &mut spec.destination] {
            let profile = endpoint
                .connection
                .as_ref()
                .and_then(|name| connections.get(name));
            if let Some(profile) = profile {
                *endpoint = dts_common::spec::Endpoint {
                    connection: Some(profile.name.clone()),
                    ..profile.endpoint.clone()
                };
            }
            crate::secrets::open_endpoint(self.node.keyring.as_ref(), endpoint);
        }
        spec
    }

    /// Refuses a certificate speaking for a worker id that another
    /// certificate registered: a worker credential gets its own tasks'
    /// specs, never another worker's.
    fn check_speaks_for(
        &self,
        caller: &Caller,
        worker_id: &str,
    ) -> std::result::Result<(), Status> {
        if caller.role != Role::Worker {
            // Plaintext (`--insecure`): nothing to bind to.
            return Ok(());
        }
        let data = self.node.state.read();
        let bound = data
            .state
            .workers
            .get(worker_id)
            .map(|w| w.certificate.as_str())
            .filter(|c| !c.is_empty());
        match bound {
            Some(owner) if owner != caller.name => Err(crate::auth::refuse(
                caller,
                &format!(
                    "speak for worker `{worker_id}`, registered with the certificate `{owner}`"
                ),
            )),
            _ => Ok(()),
        }
    }

    async fn register(
        &self,
        caller: &Caller,
        req: pb::RegisterRequest,
    ) -> Result<pb::RegisterResponse> {
        self.node.ensure_leader()?;
        if req.worker_id.trim().is_empty() {
            return Err(Error::InvalidArgument {
                field: "worker_id",
                reason: "must not be empty".into(),
            });
        }
        if req.du == 0 {
            return Err(Error::InvalidArgument {
                field: "du",
                reason: "must be at least 1".into(),
            });
        }
        self.node
            .write(Command::RegisterWorker {
                id: req.worker_id.clone(),
                address: req.address.clone(),
                du: req.du,
                at_ms: dts_common::time::now_ms(),
                certificate: if caller.role == Role::Worker {
                    caller.name.clone()
                } else {
                    String::new()
                },
            })
            .await?;
        self.node.liveness.heartbeat(&req.worker_id, Vec::new());
        self.node.schedule_now.notify_one();
        info!(worker_id = %req.worker_id, address = %req.address, du = req.du, "worker registered");
        Ok(pb::RegisterResponse {
            lease_ms: self.node.config.worker_lease_ms,
            heartbeat_interval_ms: self.node.config.worker_heartbeat_ms,
            coordinators: self.node.member_addresses(),
        })
    }

    fn heartbeat(&self, req: pb::HeartbeatRequest) -> Result<pb::HeartbeatResponse> {
        self.node.ensure_leader()?;
        let lease_ms = self.node.config.worker_lease_ms;
        let data = self.node.state.read();
        let known_online = data
            .state
            .workers
            .get(&req.worker_id)
            .is_some_and(|w| w.state != WorkerState::Lost);
        if !known_online {
            return Ok(pb::HeartbeatResponse {
                reregister: true,
                assignments: Vec::new(),
                lease_ms,
                coordinators: self.node.member_addresses(),
                probes: Vec::new(),
            });
        }
        let running = req
            .running
            .into_iter()
            .map(|r| RunningTask {
                task_id: r.task_id,
                epoch: r.epoch,
                phase: r.phase,
            })
            .collect();
        self.node.liveness.heartbeat(&req.worker_id, running);
        let assignments = data
            .state
            .tasks
            .values()
            .filter(|t| t.assigned_worker.as_deref() == Some(req.worker_id.as_str()))
            .map(|t| pb::Assignment {
                task_id: t.id.to_string(),
                epoch: t.epoch,
                name: t.name.clone(),
                du: t.du(),
                spec_json: serde_json::to_string(
                    &self.spec_for_worker(&t.spec, &data.state.connections),
                )
                .unwrap_or_default(),
                checkpoint: t.checkpoint.as_ref().map(checkpoint_to_pb),
                verify_requested: t.verify_requested,
            })
            .collect();
        Ok(pb::HeartbeatResponse {
            reregister: false,
            assignments,
            lease_ms,
            coordinators: self.node.member_addresses(),
            probes: self.node.probes.hand_out(&req.worker_id),
        })
    }

    async fn report(&self, req: pb::ProgressReport) -> Result<()> {
        self.node.ensure_leader()?;
        let task_id = Uuid::parse_str(&req.task_id).map_err(|e| Error::InvalidArgument {
            field: "task_id",
            reason: e.to_string(),
        })?;
        let report = ProgressReport {
            task_id,
            worker_id: req.worker_id,
            epoch: req.epoch,
            phase: req.phase,
            checkpoint: req.checkpoint.map(checkpoint_from_pb),
            error: (!req.error.is_empty()).then_some(req.error),
            fatal: req.fatal,
        };
        // Refuse early what is already stale; the state machine checks again at apply.
        let current = {
            let data = self.node.state.read();
            data.state
                .tasks
                .get(&task_id)
                .is_some_and(|t| is_current_owner(t, &report.worker_id, report.epoch))
        };
        if !current {
            return Err(stale(&self.node, &report));
        }
        self.node.reports.submit(report).await
    }
}

/// How often a watch checks that its node still leads: a watch on a node
/// that no longer schedules would never fire, so it ends and the worker
/// watches the new leader.
const LEADERSHIP_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

type AssignmentWatch = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::AssignmentsChanged, Status>> + Send>,
>;

#[tonic::async_trait]
impl WorkerControl for WorkerService {
    type WatchAssignmentsStream = AssignmentWatch;

    #[instrument(skip_all, fields(worker_id = %request.get_ref().worker_id))]
    async fn watch_assignments(
        &self,
        request: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<AssignmentWatch>, Status> {
        self.node.ensure_leader()?;
        let caller = caller_of_request(&request);
        let worker_id = request.into_inner().worker_id;
        self.check_speaks_for(&caller, &worker_id)?;
        let mut changes = self.node.assignments_changed.subscribe();
        let node = self.node.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            let mut check = tokio::time::interval(LEADERSHIP_CHECK);
            loop {
                let nudge = tokio::select! {
                    change = changes.recv() => match change {
                        Ok(workers) => workers.contains(&worker_id),
                        // Some were missed: one may have been this worker's.
                        Err(RecvError::Lagged(_)) => true,
                        Err(RecvError::Closed) => return,
                    },
                    _ = check.tick() => {
                        if !node.is_leader() {
                            return;
                        }
                        false
                    }
                    _ = tx.closed() => return,
                };
                if nudge && tx.send(Ok(pb::AssignmentsChanged {})).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    #[instrument(skip_all, fields(worker_id = %request.get_ref().worker_id))]
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let caller = caller_of_request(&request);
        let request = request.into_inner();
        self.check_speaks_for(&caller, &request.worker_id)?;
        Ok(Response::new(
            WorkerService::register(self, &caller, request).await?,
        ))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let caller = caller_of_request(&request);
        let request = request.into_inner();
        self.check_speaks_for(&caller, &request.worker_id)?;
        Ok(Response::new(WorkerService::heartbeat(self, request)?))
    }

    #[instrument(skip_all, fields(task_id = %request.get_ref().task_id, epoch = request.get_ref().epoch))]
    async fn report_progress(
        &self,
        request: Request<pb::ProgressReport>,
    ) -> Result<Response<pb::ReportProgressResponse>, Status> {
        let caller = caller_of_request(&request);
        let request = request.into_inner();
        self.check_speaks_for(&caller, &request.worker_id)?;
        self.report(request).await?;
        Ok(Response::new(pb::ReportProgressResponse {}))
    }

    #[instrument(skip_all, fields(worker_id = %request.get_ref().worker_id, probe = request.get_ref().id))]
    async fn report_probe(
        &self,
        request: Request<pb::ProbeResult>,
    ) -> Result<Response<pb::ReportProbeResponse>, Status> {
        let caller = caller_of_request(&request);
        let request = request.into_inner();
        self.check_speaks_for(&caller, &request.worker_id)?;
        self.node.probes.complete(request);
        Ok(Response::new(pb::ReportProbeResponse {}))
    }
}
