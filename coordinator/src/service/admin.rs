//! The admin service dtsctl talks to.

use crate::error::{Error, Result};
use crate::node::Coordinator;
use crate::service::connections;
use crate::service::convert::{task_to_pb, workers_to_pb};
use crate::state::{Command, TaskLookupError, TaskRecord};
use dts_common::model::{DesiredState, TaskStatus};
use dts_common::spec::Topology;
use dts_common::tls::{Caller, Role};
use dts_common::TaskSpec;
use dts_proto::pb;
use dts_proto::pb::admin_client::AdminClient;
use dts_proto::pb::admin_server::Admin;
use openraft::{ChangeMembers, ServerState};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::{info, instrument};
use uuid::Uuid;

pub struct AdminService {
    pub node: Arc<Coordinator>,
}

const PEER_STATUS_TIMEOUT: Duration = Duration::from_millis(800);

impl AdminService {
    fn node_status(&self) -> pb::CoordinatorInfo {
        let m = self.node.metrics();
        let membership = m.membership_config.membership();
        let voter = membership.voter_ids().any(|id| id == self.node.id);
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        pb::CoordinatorInfo {
            id: self.node.id,
            address: self.node.address.clone(),
            role: role.to_string(),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            voter,
            current_leader_id: m.current_leader.unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
        }
    }

    /// Every member's own view, asked in parallel; silent ones show as unreachable.
    async fn coordinators(&self) -> Vec<pb::CoordinatorInfo> {
        let m = self.node.metrics();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let asks = membership.nodes().map(|(id, node)| {
            let (id, addr, voter) = (*id, node.addr.clone(), voters.contains(id));
            async move {
                if id == self.node.id {
                    return self.node_status();
                }
                let unreachable = pb::CoordinatorInfo {
                    id,
                    address: addr.clone(),
                    role: "unreachable".into(),
                    voter,
                    ..Default::default()
                };
                let Ok(channel) = dts_common::client::lazy_channel(
                    &addr,
                    PEER_STATUS_TIMEOUT,
                    &self.node.transport,
                ) else {
                    return unreachable;
                };
                match AdminClient::new(channel)
                    .node_status(pb::NodeStatusRequest {})
                    .await
                {
                    // Membership is this node's committed view: a member that has not
                    // received the change yet would still call itself a learner.
                    Ok(r) => pb::CoordinatorInfo {
                        voter,
                        ..r.into_inner()
                    },
                    Err(_) => unreachable,
                }
            }
        });
        futures::future::join_all(asks).await
    }

    fn with_task<T>(&self, id: &str, f: impl FnOnce(&TaskRecord) -> Result<T>) -> Result<T> {
        let data = self.node.state.read();
        match data.state.find_task(id) {
            Ok(task) => f(task),
            Err(TaskLookupError::NotFound) => Err(Error::NotFound {
                kind: "task",
                id: id.to_string(),
            }),
            Err(TaskLookupError::Ambiguous) => Err(Error::AmbiguousTask(id.to_string())),
        }
    }

    fn task_info(&self, id: Uuid) -> Result<pb::TaskInfo> {
        self.with_task(&id.to_string(), |t| Ok(task_to_pb(t)))
    }

    async fn cluster_status(&self) -> Result<pb::ClusterStatusResponse> {
        // Worker liveness lives on the leader: send the caller there when there is one.
        // With no leader at all, answer from this node so an operator still sees something.
        let leader = self.node.leader();
        if let Some((id, _)) = &leader {
            if *id != self.node.id {
                return Err(Error::NotLeader { leader });
            }
        }
        let coordinators = self.coordinators().await;
        let workers = {
            let data = self.node.state.read();
            let liveness = self.node.is_leader().then_some(&self.node.liveness);
            workers_to_pb(&data.state, liveness)
        };
        Ok(pb::ClusterStatusResponse {
            leader_id: leader.map(|(id, _)| id).unwrap_or(0),
            coordinators,
            workers,
        })
    }

    async fn add_coordinator(
        &self,
        req: pb::AddCoordinatorRequest,
    ) -> Result<pb::MembershipResponse> {
        self.node.ensure_leader()?;
        if req.id == 0 {
            return Err(Error::InvalidArgument {
                field: "id",
                reason: "must be a positive node id".into(),
            });
        }
        if req.address.trim().is_empty() {
            return Err(Error::InvalidArgument {
                field: "address",
                reason: "must be host:port".into(),
            });
        }
        let members = self.node.metrics().membership_config.membership().clone();
        if let Some(existing) = members.get_node(&req.id) {
            if existing.addr != req.address {
                return Err(Error::FailedPrecondition(format!(
                    "coordinator {} is already a member at {}",
                    req.id, existing.addr
                )));
            }
        }
        info!(node_id = req.id, address = %req.address, "adding coordinator as learner");
        let mut changed = self
            .node
            .raft
            .add_learner(req.id, openraft::BasicNode::new(req.address.clone()), true)
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        if !req.learner_only {
            info!(node_id = req.id, "promoting coordinator to voter");
            changed = self
                .node
                .raft
                .change_membership(ChangeMembers::AddVoterIds([req.id].into()), false)
                .await
                .map_err(|e| Error::Raft(e.to_string()))?;
        }
        // The answer, and a status asked for right after, show the change.
        self.node.membership_visible(changed.log_id).await?;
        Ok(pb::MembershipResponse {
            coordinators: self.coordinators().await,
        })
    }

    async fn remove_coordinator(
        &self,
        req: pb::RemoveCoordinatorRequest,
    ) -> Result<pb::MembershipResponse> {
        self.node.ensure_leader()?;
        let members = self.node.metrics().membership_config.membership().clone();
        let voters: BTreeSet<u64> = members.voter_ids().collect();
        if members.get_node(&req.id).is_none() {
            return Err(Error::NotFound {
                kind: "coordinator",
                id: req.id.to_string(),
            });
        }
        let change = if voters.contains(&req.id) {
            if voters.len() == 1 {
                return Err(Error::FailedPrecondition(
                    "cannot remove the last voting coordinator".into(),
                ));
            }
            ChangeMembers::RemoveVoters([req.id].into())
        } else {
            ChangeMembers::RemoveNodes([req.id].into())
        };
        info!(node_id = req.id, "removing coordinator");
        let changed = self
            .node
            .raft
            .change_membership(change, false)
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        self.node.membership_visible(changed.log_id).await?;
        Ok(pb::MembershipResponse {
            coordinators: self.coordinators().await,
        })
    }

    async fn drain_worker(&self, req: pb::DrainWorkerRequest) -> Result<pb::WorkerInfo> {
        self.node.ensure_leader()?;
        if !self
            .node
            .state
            .read()
            .state
            .workers
            .contains_key(&req.worker_id)
        {
            return Err(Error::NotFound {
                kind: "worker",
                id: req.worker_id,
            });
        }
        self.node
            .write(Command::DrainWorker {
                id: req.worker_id.clone(),
                at_ms: dts_common::time::now_ms(),
            })
            .await?;
        self.node.schedule_now.notify_one();
        let data = self.node.state.read();
        workers_to_pb(&data.state, Some(&self.node.liveness))
            .into_iter()
            .find(|w| w.id == req.worker_id)
            .ok_or(Error::NotFound {
                kind: "worker",
                id: req.worker_id,
            })
    }

    async fn create_task(&self, req: pb::CreateTaskRequest) -> Result<pb::TaskInfo> {
        self.node.ensure_leader()?;
        let spec = {
            let data = self.node.state.read();
            dts_common::connection::spec_with_connections(&req.spec_toml, |name| {
                data.state.connections.get(name).map(|p| p.endpoint.clone())
            })?
        };
        let spec = crate::secrets::seal_spec(self.node.keyring.as_ref(), spec)
            .map_err(|e| Error::Unavailable(format!("sealing the passwords: {e}")))?;
        if spec.reverse_of.is_some() {
            return Err(Error::InvalidArgument {
                field: "reverse_of",
                reason: "is set by dts on the reverse task of topology = \"two_way\"".into(),
            });
        }
        {
            let data = self.node.state.read();
            let opposed = data.state.tasks.values().find_map(|task| {
                dts_common::topology::opposite(&spec, &task.spec).map(|db| (task, db))
            });
            if let Some((task, db)) = opposed {
                return Err(Error::FailedPrecondition(format!(
                    "task {} ({}) already syncs the other way over database `{db}`: two one-way \
                     tasks in opposite directions would apply each other's DDL again; delete it \
                     and create both directions as one task file with topology = \"two_way\"",
                    task.id, task.name
                )));
            }
        }
        let now = dts_common::time::now_ms();
        let desired = if req.start {
            DesiredState::Running
        } else {
            DesiredState::Created
        };
        let forward = new_task(spec, desired, now);
        let id = forward.id;
        if forward.spec.topology == Topology::TwoWay {
            let mut reverse = new_task(
                dts_common::topology::reverse(&forward.spec, &id.to_string()),
                desired,
                now,
            );
            reverse.linked = Some(id);
            reverse.waits_for_link = true;
            let mut forward = forward;
            forward.linked = Some(reverse.id);
            info!(task_id = %id, reverse_id = %reverse.id, "two-way pair created");
            self.node
                .write(Command::CreateTasks {
                    tasks: vec![forward, reverse],
                })
                .await?;
        } else {
            self.node
                .write(Command::CreateTask {
                    task: Box::new(forward),
                })
                .await?;
            info!(task_id = %id, "task created");
        }
        self.node.schedule_now.notify_one();
        self.task_info(id)
    }

    async fn control_task(
        &self,
        req: pb::ControlTaskRequest,
        caller: &Caller,
    ) -> std::result::Result<pb::TaskInfo, Status> {
        self.node.ensure_leader()?;
        let action = pb::TaskAction::try_from(req.action).unwrap_or(pb::TaskAction::Unspecified);
        if action == pb::TaskAction::Verify {
            return Ok(self.request_verify(&req.task_id).await?);
        }
        if caller.role != Role::Admin {
            return Err(crate::auth::refuse(
                caller,
                &format!(
                    "{} a task",
                    action
                        .as_str_name()
                        .trim_start_matches("TASK_ACTION_")
                        .to_lowercase()
                ),
            ));
        }
        let (id, desired) = self.with_task(&req.task_id, |task| {
            let desired = next_desired(task, action)?;
            Ok((task.id, desired))
        })?;
        if !req.ignore_alerts.is_empty() {
            if !matches!(action, pb::TaskAction::Start | pb::TaskAction::Resume) {
                return Err(Error::InvalidArgument {
                    field: "ignore_alerts",
                    reason: "goes with start or resume only".into(),
                }
                .into());
            }
            dts_common::spec::validate_ignore_alerts("ignore_alerts", &req.ignore_alerts).map_err(
                |e| Error::InvalidArgument {
                    field: "ignore_alerts",
                    reason: e.to_string(),
                },
            )?;
        }
        self.node
            .write(Command::SetDesired {
                task_id: id,
                desired,
                at_ms: dts_common::time::now_ms(),
                acknowledge: req.ignore_alerts.clone(),
            })
            .await?;
        self.node.schedule_now.notify_one();
        info!(task_id = %id, desired = %desired, "task desired state changed");
        Ok(self.task_info(id)?)
    }

    /// One more verification pass for a running task's worker to run.
    async fn request_verify(&self, task_id: &str) -> Result<pb::TaskInfo> {
        let id = self.with_task(task_id, |task| {
            if task.status() != TaskStatus::Running {
                return Err(Error::FailedPrecondition(format!(
                    "task {} is {}; verification runs in a running task (start or resume it first)",
                    task.id,
                    task.status()
                )));
            }
            if task.spec.reverse_of.is_some() {
                return Err(Error::FailedPrecondition(format!(
                    "task {} is the reverse task of a two-way pair; verify its forward task {}, \
                     which compares the pair's tables",
                    task.id,
                    task.linked.map(|l| l.to_string()).unwrap_or_default()
                )));
            }
            Ok(task.id)
        })?;
        self.node
            .write(Command::RequestVerify {
                task_id: id,
                at_ms: dts_common::time::now_ms(),
            })
            .await?;
        info!(task_id = %id, "verification pass requested");
        self.task_info(id)
    }

    async fn delete_task(&self, req: pb::DeleteTaskRequest) -> Result<pb::DeleteTaskResponse> {
        self.node.ensure_leader()?;
        let id = self.with_task(&req.task_id, |t| Ok(t.id))?;
        self.node.write(Command::DeleteTask { task_id: id }).await?;
        info!(task_id = %id, "task deleted");
        Ok(pb::DeleteTaskResponse {
            task_id: id.to_string(),
        })
    }
}

fn new_task(spec: TaskSpec, desired: DesiredState, now: i64) -> TaskRecord {
    let id = Uuid::new_v4();
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| format!("task-{}", &id.simple().to_string()[..8]));
    TaskRecord {
        id,
        name,
        spec,
        desired,
        assigned_worker: None,
        epoch: 0,
        reported_epoch: 0,
        phase: String::new(),
        pending_reason: None,
        last_error: None,
        failed: false,
        checkpoint: None,
        created_at_ms: now,
        updated_at_ms: now,
        linked: None,
        waits_for_link: false,
        phase_since_ms: now,
        alerts: Default::default(),
        verify_requested: 0,
    }
}

/// The allowed transitions of a task's desired state.
fn next_desired(task: &TaskRecord, action: pb::TaskAction) -> Result<DesiredState> {
    use pb::TaskAction as A;
    let status = task.status();
    let refuse = |hint: &str| {
        Err(Error::FailedPrecondition(format!(
            "task {} is {status}; {hint}",
            task.id
        )))
    };
    match action {
        A::Start => match status {
            TaskStatus::Created | TaskStatus::Stopped | TaskStatus::Failed => {
                Ok(DesiredState::Running)
            }
            TaskStatus::Paused => refuse("use `task resume`"),
            _ => refuse("it is already started"),
        },
        A::Pause => match task.desired {
            DesiredState::Running => Ok(DesiredState::Paused),
            _ => refuse("only a started task can be paused"),
        },
        A::Resume => match status {
            TaskStatus::Paused => Ok(DesiredState::Running),
            _ => refuse("only a paused task can be resumed"),
        },
        A::Stop => match status {
            TaskStatus::Stopped => refuse("it is already stopped"),
            _ => Ok(DesiredState::Stopped),
        },
        A::Unspecified | A::Verify => Err(Error::InvalidArgument {
            field: "action",
            reason: "must be start, pause, resume, stop or verify".into(),
        }),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn cluster_status(
        &self,
        _: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        Ok(Response::new(AdminService::cluster_status(self).await?))
    }

    async fn node_status(
        &self,
        _: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::CoordinatorInfo>, Status> {
        Ok(Response::new(AdminService::node_status(self)))
    }

    #[instrument(skip_all, fields(node_id = request.get_ref().id))]
    async fn add_coordinator(
        &self,
        request: Request<pb::AddCoordinatorRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        Ok(Response::new(
            AdminService::add_coordinator(self, request.into_inner()).await?,
        ))
    }

    #[instrument(skip_all, fields(node_id = request.get_ref().id))]
    async fn remove_coordinator(
        &self,
        request: Request<pb::RemoveCoordinatorRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        Ok(Response::new(
            AdminService::remove_coordinator(self, request.into_inner()).await?,
        ))
    }

    async fn list_workers(
        &self,
        _: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        self.node.ensure_leader()?;
        self.node.linearizable().await?;
        let data = self.node.state.read();
        Ok(Response::new(pb::ListWorkersResponse {
            workers: workers_to_pb(&data.state, Some(&self.node.liveness)),
        }))
    }

    #[instrument(skip_all, fields(worker_id = %request.get_ref().worker_id))]
    async fn drain_worker(
        &self,
        request: Request<pb::DrainWorkerRequest>,
    ) -> Result<Response<pb::WorkerInfo>, Status> {
        Ok(Response::new(
            AdminService::drain_worker(self, request.into_inner()).await?,
        ))
    }

    #[instrument(skip_all)]
    async fn create_task(
        &self,
        request: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::TaskInfo>, Status> {
        Ok(Response::new(
            AdminService::create_task(self, request.into_inner()).await?,
        ))
    }

    async fn list_tasks(
        &self,
        _: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        self.node.ensure_leader()?;
        self.node.linearizable().await?;
        let data = self.node.state.read();
        let mut tasks: Vec<&TaskRecord> = data.state.tasks.values().collect();
        tasks.sort_by_key(|t| (t.created_at_ms, t.id));
        Ok(Response::new(pb::ListTasksResponse {
            tasks: tasks.into_iter().map(task_to_pb).collect(),
        }))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::TaskInfo>, Status> {
        self.node.ensure_leader()?;
        self.node.linearizable().await?;
        let id = request.into_inner().task_id;
        Ok(Response::new(self.with_task(&id, |t| Ok(task_to_pb(t)))?))
    }

    #[instrument(skip_all, fields(task_id = %request.get_ref().task_id, action = request.get_ref().action))]
    async fn control_task(
        &self,
        request: Request<pb::ControlTaskRequest>,
    ) -> Result<Response<pb::TaskInfo>, Status> {
        let caller = crate::auth::caller_of_request(&request);
        Ok(Response::new(
            AdminService::control_task(self, request.into_inner(), &caller).await?,
        ))
    }

    #[instrument(skip_all, fields(task_id = %request.get_ref().task_id))]
    async fn delete_task(
        &self,
        request: Request<pb::DeleteTaskRequest>,
    ) -> Result<Response<pb::DeleteTaskResponse>, Status> {
        Ok(Response::new(
            AdminService::delete_task(self, request.into_inner()).await?,
        ))
    }

    #[instrument(skip_all)]
    async fn create_connection(
        &self,
        request: Request<pb::CreateConnectionRequest>,
    ) -> Result<Response<pb::ConnectionInfo>, Status> {
        Ok(Response::new(
            connections::create(&self.node, request.into_inner()).await?,
        ))
    }

    async fn list_connections(
        &self,
        _: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        self.node.ensure_leader()?;
        self.node.linearizable().await?;
        Ok(Response::new(connections::list(&self.node)))
    }

    async fn get_connection(
        &self,
        request: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::ConnectionInfo>, Status> {
        self.node.ensure_leader()?;
        self.node.linearizable().await?;
        Ok(Response::new(connections::get(
            &self.node,
            &request.into_inner().name,
        )?))
    }

    #[instrument(skip_all, fields(connection = %request.get_ref().name))]
    async fn delete_connection(
        &self,
        request: Request<pb::DeleteConnectionRequest>,
    ) -> Result<Response<pb::DeleteConnectionResponse>, Status> {
        Ok(Response::new(
            connections::delete(&self.node, &request.into_inner().name).await?,
        ))
    }

    #[instrument(skip_all, fields(connection = %request.get_ref().name))]
    async fn test_connection(
        &self,
        request: Request<pb::TestConnectionRequest>,
    ) -> Result<Response<pb::TestConnectionResponse>, Status> {
        Ok(Response::new(
            connections::test(&self.node, &request.into_inner().name).await?,
        ))
    }
}
