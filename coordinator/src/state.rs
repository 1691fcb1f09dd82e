//! The replicated control-plane state and the commands that change it. Pure:
//! applying a command is deterministic and does no I/O, so every coordinator
//! reaches the same state from the same log.

use dts_common::alerts::AlertKind;
pub use dts_common::connection::ConnectionProfile;
use dts_common::model::{DesiredState, TaskStatus, WorkerState};
use dts_common::TaskSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

pub type WorkerId = String;
pub type TaskId = Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub id: WorkerId,
    pub address: String,
    pub du_total: u32,
    pub state: WorkerState,
    pub registered_at_ms: i64,
    pub changed_at_ms: i64,
    /// The name in the certificate it first registered with: only that
    /// certificate may speak for this id afterwards (empty: registered
    /// without TLS, bound to nothing).
    #[serde(default)]
    pub certificate: String,
}

/// The last durably applied position of a task, as its worker reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: String,
    pub display: String,
    pub event_time_ms: i64,
    pub rows_applied: u64,
    pub reported_at_ms: i64,
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: TaskId,
    pub name: String,
    pub spec: TaskSpec,
    pub desired: DesiredState,
    /// The worker that owns the task under `epoch`, if any.
    pub assigned_worker: Option<WorkerId>,
    /// Fencing token: bumped on every (re)assignment, never reused.
    pub epoch: u64,
    /// Highest epoch a progress report was accepted for.
    pub reported_epoch: u64,
    pub phase: String,
    pub pending_reason: Option<String>,
    pub last_error: Option<String>,
    pub failed: bool,
    pub checkpoint: Option<Checkpoint>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The other task of a two-way pair: started, paused, stopped and
    /// deleted with this one.
    #[serde(default)]
    pub linked: Option<TaskId>,
    /// The reverse task of a two-way pair waits, unplaced, until its
    /// forward task (`linked`) has reached incremental sync: before that the
    /// tables it reads may not exist yet.
    #[serde(default)]
    pub waits_for_link: bool,
    /// When the task entered its current phase (leader time).
    #[serde(default)]
    pub phase_since_ms: i64,
    /// The task's alert incidents (see `alerts`), open or last closed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alerts: BTreeMap<AlertKind, AlertRecord>,
    /// Verification passes users asked for (`task verify --run`); the
    /// owning worker runs one more each time this grows.
    #[serde(default)]
    pub verify_requested: u64,
}

/// One kind of alert of a task: its latest incident, and what of it the
/// webhook has been told. Kept in the replicated state, so a new leader
/// neither repeats a notification nor forgets one owed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Counts the incidents of this kind of this task.
    pub incident: u64,
    pub firing: bool,
    pub since_ms: i64,
    pub detail: String,
    /// The state the webhook was last told for this incident.
    pub delivered: Option<bool>,
}

impl TaskRecord {
    /// The worker's last progress report (JSON in the checkpoint; see the
    /// worker's `progress::Snapshot`), if any.
    pub fn progress(&self) -> Option<serde_json::Value> {
        self.checkpoint
            .as_ref()
            .and_then(|c| serde_json::from_str(&c.position).ok())
    }

    pub fn du(&self) -> u32 {
        self.spec.du
    }

    /// Whether the scheduler should keep this task placed on a worker.
    pub fn is_runnable(&self) -> bool {
        self.desired == DesiredState::Running && !self.failed
    }

    pub fn status(&self) -> TaskStatus {
        match self.desired {
            DesiredState::Created => TaskStatus::Created,
            DesiredState::Paused => TaskStatus::Paused,
            DesiredState::Stopped => TaskStatus::Stopped,
            DesiredState::Running if self.failed => TaskStatus::Failed,
            DesiredState::Running => match &self.assigned_worker {
                None => TaskStatus::Pending,
                Some(_) if self.reported_epoch < self.epoch => TaskStatus::Starting,
                Some(_) => TaskStatus::Running,
            },
        }
    }
}

/// One scheduling decision for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub task_id: TaskId,
    /// The epoch the decision was made against; stale decisions are dropped.
    pub from_epoch: u64,
    pub worker: Option<WorkerId>,
    /// A new owner gets `from_epoch + 1`; unassigning keeps the epoch.
    pub new_epoch: u64,
    pub pending_reason: Option<String>,
}

/// A progress report that passed the leader's epoch check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressReport {
    pub task_id: TaskId,
    pub worker_id: WorkerId,
    pub epoch: u64,
    pub phase: String,
    pub checkpoint: Option<Checkpoint>,
    pub error: Option<String>,
    pub fatal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    RegisterWorker {
        id: WorkerId,
        address: String,
        du: u32,
        at_ms: i64,
        /// The registering certificate's name ("" without TLS).
        #[serde(default)]
        certificate: String,
    },
    DrainWorker {
        id: WorkerId,
        at_ms: i64,
    },
    CreateTask {
        task: Box<TaskRecord>,
    },
    /// Tasks created together (a two-way pair), or none.
    CreateTasks {
        tasks: Vec<TaskRecord>,
    },
    SetDesired {
        task_id: TaskId,
        desired: DesiredState,
        at_ms: i64,
        /// Precheck alerts acknowledged with it (added to the spec's
        /// `ignore_alerts`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        acknowledge: Vec<String>,
    },
    DeleteTask {
        task_id: TaskId,
    },
    /// A user asked for a verification pass.
    RequestVerify {
        task_id: TaskId,
        at_ms: i64,
    },
    /// One scheduler round: workers whose lease expired, then placements.
    ApplyPlan {
        lost_workers: Vec<WorkerId>,
        placements: Vec<Placement>,
        at_ms: i64,
    },
    /// Reports coalesced by the leader over a short interval.
    Reports {
        reports: Vec<ProgressReport>,
        at_ms: i64,
    },
    /// An alert's condition began (a new incident) or ended.
    SetAlert {
        task_id: TaskId,
        kind: AlertKind,
        firing: bool,
        detail: String,
        at_ms: i64,
    },
    /// The webhook took the notification of `incident` in state `firing`.
    AlertDelivered {
        task_id: TaskId,
        kind: AlertKind,
        incident: u64,
        firing: bool,
    },
    /// A connection profile created or replaced (its password sealed).
    PutConnection {
        profile: ConnectionProfile,
    },
    DeleteConnection {
        name: String,
    },
}

/// The result of applying one command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// Reports dropped because their epoch or owner was no longer current,
    /// by their place in the command's list: not by task, because one batch
    /// may hold a task's last report from the runtime it replaced and the
    /// first from the new one, and only the old one is stale.
    pub stale_reports: Vec<usize>,
    /// Placements dropped because the task changed since the plan was made.
    pub stale_placements: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub workers: BTreeMap<WorkerId, WorkerRecord>,
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionProfile>,
}

impl ClusterState {
    pub fn apply(&mut self, command: Command) -> CommandOutcome {
        let mut outcome = CommandOutcome::default();
        match command {
            Command::RegisterWorker {
                id,
                address,
                du,
                at_ms,
                certificate,
            } => {
                let record = self
                    .workers
                    .entry(id.clone())
                    .or_insert_with(|| WorkerRecord {
                        id,
                        address: address.clone(),
                        du_total: du,
                        state: WorkerState::Online,
                        registered_at_ms: at_ms,
                        changed_at_ms: at_ms,
                        certificate: certificate.clone(),
                    });
                // The service refused another certificate already; this
                // only binds an id registered before TLS was turned on.
                if record.certificate.is_empty() {
                    record.certificate = certificate;
                }
                record.address = address;
                record.du_total = du;
                // A draining worker that restarts stays draining: the operator asked.
                if record.state == WorkerState::Lost {
                    record.state = WorkerState::Online;
                }
                record.changed_at_ms = at_ms;
            }
            Command::DrainWorker { id, at_ms } => {
                if let Some(worker) = self.workers.get_mut(&id) {
                    worker.state = WorkerState::Draining;
                    worker.changed_at_ms = at_ms;
                }
            }
            Command::CreateTask { task } => {
                self.tasks.insert(task.id, *task);
            }
            Command::CreateTasks { tasks } => {
                for task in tasks {
                    self.tasks.insert(task.id, task);
                }
            }
            Command::SetDesired {
                task_id,
                desired,
                at_ms,
                acknowledge,
            } => {
                let linked = self.tasks.get(&task_id).and_then(|t| t.linked);
                for task_id in std::iter::once(task_id).chain(linked) {
                    let Some(task) = self.tasks.get_mut(&task_id) else {
                        continue;
                    };
                    task.desired = desired;
                    for alert in &acknowledge {
                        if !task.spec.ignore_alerts.contains(alert) {
                            task.spec.ignore_alerts.push(alert.clone());
                        }
                    }
                    if desired == DesiredState::Running && task.failed {
                        task.failed = false;
                        // Started again before the scheduler took the failed
                        // task off its worker: that worker's runtime for this
                        // epoch has ended, and a worker never restarts a
                        // (task, epoch) pair it saw end. A new epoch is a new run.
                        if task.assigned_worker.is_some() {
                            task.epoch += 1;
                            task.phase.clear();
                        }
                    }
                    task.updated_at_ms = at_ms;
                }
            }
            Command::RequestVerify { task_id, at_ms } => {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.verify_requested += 1;
                    task.updated_at_ms = at_ms;
                }
            }
            Command::DeleteTask { task_id } => {
                if let Some(task) = self.tasks.remove(&task_id) {
                    if let Some(linked) = task.linked {
                        self.tasks.remove(&linked);
                    }
                }
            }
            Command::ApplyPlan {
                lost_workers,
                placements,
                at_ms,
            } => {
                for id in lost_workers {
                    if let Some(worker) = self.workers.get_mut(&id) {
                        worker.state = WorkerState::Lost;
                        worker.changed_at_ms = at_ms;
                    }
                }
                for placement in placements {
                    if !self.apply_placement(placement, at_ms) {
                        outcome.stale_placements += 1;
                    }
                }
            }
            Command::Reports { reports, at_ms } => {
                for (index, report) in reports.into_iter().enumerate() {
                    if !self.apply_report(report, at_ms) {
                        outcome.stale_reports.push(index);
                    }
                }
            }
            Command::SetAlert {
                task_id,
                kind,
                firing,
                detail,
                at_ms,
            } => {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    let previous = task.alerts.get(&kind);
                    if previous.is_some_and(|a| a.firing == firing) {
                        return outcome;
                    }
                    let incident = previous.map_or(0, |a| a.incident) + u64::from(firing);
                    // An incident nobody was told of ends as if told.
                    let delivered = match previous {
                        Some(a) if !firing && a.delivered.is_none() => Some(false),
                        _ => None,
                    };
                    task.alerts.insert(
                        kind,
                        AlertRecord {
                            incident,
                            firing,
                            since_ms: at_ms,
                            detail,
                            delivered,
                        },
                    );
                }
            }
            Command::AlertDelivered {
                task_id,
                kind,
                incident,
                firing,
            } => {
                let alert = self
                    .tasks
                    .get_mut(&task_id)
                    .and_then(|t| t.alerts.get_mut(&kind));
                if let Some(alert) = alert.filter(|a| a.incident == incident && a.firing == firing)
                {
                    alert.delivered = Some(firing);
                }
            }
            Command::PutConnection { profile } => {
                self.connections.insert(profile.name.clone(), profile);
            }
            Command::DeleteConnection { name } => {
                // The leader refused this already; a task created meanwhile
                // still keeps its profile.
                if self.tasks_using(&name).is_empty() {
                    self.connections.remove(&name);
                }
            }
        }
        outcome
    }

    /// The tasks whose source or destination is the profile `name`.
    pub fn tasks_using(&self, name: &str) -> Vec<&TaskRecord> {
        self.tasks
            .values()
            .filter(|t| {
                [&t.spec.source, &t.spec.destination]
                    .iter()
                    .any(|e| e.connection.as_deref() == Some(name))
            })
            .collect()
    }

    fn apply_placement(&mut self, placement: Placement, at_ms: i64) -> bool {
        let Some(task) = self.tasks.get_mut(&placement.task_id) else {
            return false;
        };
        if task.epoch != placement.from_epoch {
            return false;
        }
        if placement.worker.is_some() && placement.worker != task.assigned_worker {
            task.phase.clear();
        }
        if placement.worker.is_none() {
            task.phase.clear();
        }
        task.assigned_worker = placement.worker;
        task.epoch = placement.new_epoch;
        task.pending_reason = placement.pending_reason;
        task.updated_at_ms = at_ms;
        true
    }

    /// Accepts a report only from the current owner under the current epoch.
    fn apply_report(&mut self, report: ProgressReport, at_ms: i64) -> bool {
        let Some(task) = self.tasks.get_mut(&report.task_id) else {
            return false;
        };
        if !is_current_owner(task, &report.worker_id, report.epoch) {
            return false;
        }
        task.reported_epoch = report.epoch;
        if task.phase != report.phase {
            task.phase_since_ms = at_ms;
        }
        task.phase = report.phase;
        let reached_incremental = task.phase == "incremental";
        if let Some(checkpoint) = report.checkpoint {
            task.checkpoint = Some(Checkpoint {
                epoch: report.epoch,
                reported_at_ms: at_ms,
                ..checkpoint
            });
        }
        // A failure stands with its reason until the task is started again:
        // a report the worker sent before its fatal one may arrive after it.
        if task.failed {
            task.updated_at_ms = at_ms;
        } else {
            // The worker says what is wrong now: a retried error that healed clears.
            task.failed = report.fatal && report.error.is_some();
            task.last_error = report.error;
            task.updated_at_ms = at_ms;
        }
        let linked = task.linked;
        if reached_incremental {
            if let Some(reverse) = linked.and_then(|id| self.tasks.get_mut(&id)) {
                reverse.waits_for_link = false;
            }
        }
        true
    }

    /// Resolves a full task id or a unique prefix of one.
    pub fn find_task(&self, id_or_prefix: &str) -> Result<&TaskRecord, TaskLookupError> {
        if let Ok(id) = Uuid::parse_str(id_or_prefix) {
            return self.tasks.get(&id).ok_or(TaskLookupError::NotFound);
        }
        let prefix = id_or_prefix.to_ascii_lowercase();
        if prefix.is_empty() {
            return Err(TaskLookupError::NotFound);
        }
        let mut matches = self
            .tasks
            .values()
            .filter(|t| t.id.to_string().starts_with(&prefix));
        match (matches.next(), matches.next()) {
            (Some(task), None) => Ok(task),
            (Some(_), Some(_)) => Err(TaskLookupError::Ambiguous),
            (None, _) => Err(TaskLookupError::NotFound),
        }
    }

    /// DUs of the tasks assigned to each worker.
    pub fn du_used(&self) -> BTreeMap<&str, u32> {
        let mut used = BTreeMap::new();
        for task in self.tasks.values() {
            if let Some(worker) = &task.assigned_worker {
                *used.entry(worker.as_str()).or_insert(0) += task.du();
            }
        }
        used
    }
}

pub fn is_current_owner(task: &TaskRecord, worker_id: &str, epoch: u64) -> bool {
    task.epoch == epoch && task.assigned_worker.as_deref() == Some(worker_id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskLookupError {
    NotFound,
    Ambiguous,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn spec(du: u32) -> TaskSpec {
        let text = format!(
            "du = {du}\n[source]\nhost = \"a\"\nuser = \"u\"\n[destination]\nhost = \"b\"\nuser = \"u\"\n[[objects]]\ndatabase = \"d\"\n"
        );
        match TaskSpec::from_toml(&text) {
            Ok(spec) => spec,
            Err(e) => panic!("test spec: {e}"),
        }
    }

    pub fn task(n: u128, du: u32, desired: DesiredState) -> TaskRecord {
        TaskRecord {
            id: Uuid::from_u128(n),
            name: format!("t{n}"),
            spec: spec(du),
            desired,
            assigned_worker: None,
            epoch: 0,
            reported_epoch: 0,
            phase: String::new(),
            pending_reason: None,
            last_error: None,
            failed: false,
            checkpoint: None,
            created_at_ms: i64::try_from(n).unwrap_or(0),
            updated_at_ms: 0,
            linked: None,
            waits_for_link: false,
            phase_since_ms: 0,
            alerts: Default::default(),
            verify_requested: 0,
        }
    }

    fn report(task: u128, worker: &str, epoch: u64) -> ProgressReport {
        ProgressReport {
            task_id: Uuid::from_u128(task),
            worker_id: worker.to_string(),
            epoch,
            phase: "incremental".to_string(),
            checkpoint: Some(Checkpoint {
                position: "p".into(),
                ..Default::default()
            }),
            error: None,
            fatal: false,
        }
    }

    /// Task 1 (2 DU, running) placed on worker w1 under epoch 1.
    fn task_one_placed_on_w1() -> ClusterState {
        let mut state = ClusterState::default();
        state.apply(Command::CreateTask {
            task: Box::new(task(1, 2, DesiredState::Running)),
        });
        state.apply(Command::ApplyPlan {
            lost_workers: vec![],
            placements: vec![Placement {
                task_id: Uuid::from_u128(1),
                from_epoch: 0,
                worker: Some("w1".into()),
                new_epoch: 1,
                pending_reason: None,
            }],
            at_ms: 1,
        });
        state
    }

    #[test]
    fn reports_from_old_epoch_or_other_worker_are_dropped() {
        let mut state = task_one_placed_on_w1();
        let outcome = state.apply(Command::Reports {
            reports: vec![report(1, "w1", 0), report(1, "w2", 1), report(1, "w1", 1)],
            at_ms: 2,
        });
        assert_eq!(outcome.stale_reports, vec![0, 1]);
        let task = &state.tasks[&Uuid::from_u128(1)];
        assert_eq!(task.reported_epoch, 1);
        assert_eq!(task.status(), TaskStatus::Running);
        assert_eq!(task.checkpoint.as_ref().map(|c| c.epoch), Some(1));
    }

    #[test]
    fn an_alert_incident_is_told_once_and_its_end_once() {
        let mut state = task_one_placed_on_w1();
        let id = Uuid::from_u128(1);
        let set = |firing| Command::SetAlert {
            task_id: id,
            kind: AlertKind::Failure,
            firing,
            detail: "boom".into(),
            at_ms: 5,
        };
        let delivered = |incident, firing| Command::AlertDelivered {
            task_id: id,
            kind: AlertKind::Failure,
            incident,
            firing,
        };
        let alert = |state: &ClusterState| state.tasks[&id].alerts[&AlertKind::Failure].clone();
        state.apply(set(true));
        assert_eq!((alert(&state).incident, alert(&state).delivered), (1, None));
        // Setting what holds already changes nothing.
        state.apply(set(true));
        assert_eq!(alert(&state).incident, 1);
        // A delivery of another incident or state is not this one's.
        state.apply(delivered(2, true));
        state.apply(delivered(1, false));
        assert_eq!(alert(&state).delivered, None);
        state.apply(delivered(1, true));
        assert_eq!(alert(&state).delivered, Some(true));
        // It ends: the end is owed.
        state.apply(set(false));
        assert_eq!((alert(&state).incident, alert(&state).delivered), (1, None));
        state.apply(delivered(1, false));
        assert_eq!(alert(&state).delivered, Some(false));
        // A second incident that ends before anyone was told owes nothing.
        state.apply(set(true));
        state.apply(set(false));
        assert_eq!(
            (alert(&state).incident, alert(&state).delivered),
            (2, Some(false))
        );
    }

    #[test]
    fn placement_made_against_old_epoch_is_dropped() {
        let mut state = ClusterState::default();
        state.apply(Command::CreateTask {
            task: Box::new(task(1, 2, DesiredState::Running)),
        });
        let place = |from_epoch, worker: &str| Placement {
            task_id: Uuid::from_u128(1),
            from_epoch,
            worker: Some(worker.into()),
            new_epoch: from_epoch + 1,
            pending_reason: None,
        };
        let outcome = state.apply(Command::ApplyPlan {
            lost_workers: vec![],
            placements: vec![place(0, "w1"), place(0, "w2")],
            at_ms: 1,
        });
        assert_eq!(outcome.stale_placements, 1);
        assert_eq!(
            state.tasks[&Uuid::from_u128(1)].assigned_worker.as_deref(),
            Some("w1")
        );
    }

    #[test]
    fn a_report_arriving_after_the_fatal_one_keeps_the_failure_and_its_reason() {
        let mut state = task_one_placed_on_w1();
        let mut fatal = report(1, "w1", 1);
        fatal.error = Some("table `shop`.`keyed` already exists".into());
        fatal.fatal = true;
        let earlier = report(1, "w1", 1);
        state.apply(Command::Reports {
            reports: vec![fatal, earlier],
            at_ms: 2,
        });
        let task = &state.tasks[&Uuid::from_u128(1)];
        assert_eq!(task.status(), TaskStatus::Failed);
        assert_eq!(
            task.last_error.as_deref(),
            Some("table `shop`.`keyed` already exists")
        );
    }

    #[test]
    fn a_failed_task_started_before_it_was_unassigned_gets_a_new_epoch() {
        let mut state = task_one_placed_on_w1();
        let mut fatal = report(1, "w1", 1);
        fatal.error = Some("destination unreachable".into());
        fatal.fatal = true;
        state.apply(Command::Reports {
            reports: vec![fatal],
            at_ms: 2,
        });
        assert_eq!(
            state.tasks[&Uuid::from_u128(1)].status(),
            TaskStatus::Failed
        );
        let start = Command::SetDesired {
            task_id: Uuid::from_u128(1),
            desired: DesiredState::Running,
            at_ms: 3,
            acknowledge: Vec::new(),
        };
        state.apply(start.clone());
        let task = &state.tasks[&Uuid::from_u128(1)];
        assert_eq!(task.assigned_worker.as_deref(), Some("w1"));
        assert_eq!(
            task.epoch, 2,
            "the ended runtime's epoch must not be reused"
        );
        assert_eq!(task.status(), TaskStatus::Starting);
        // Starting a task that is not failed changes nothing.
        state.apply(start);
        assert_eq!(state.tasks[&Uuid::from_u128(1)].epoch, 2);
    }

    #[test]
    fn lost_worker_comes_back_online_on_register() {
        let mut state = ClusterState::default();
        let register = Command::RegisterWorker {
            id: "w".into(),
            address: "h".into(),
            du: 4,
            at_ms: 0,
            certificate: String::new(),
        };
        state.apply(register.clone());
        state.apply(Command::ApplyPlan {
            lost_workers: vec!["w".into()],
            placements: vec![],
            at_ms: 1,
        });
        assert_eq!(state.workers["w"].state, WorkerState::Lost);
        state.apply(register);
        assert_eq!(state.workers["w"].state, WorkerState::Online);
    }

    #[test]
    fn prefix_lookup_requires_uniqueness() {
        let mut state = ClusterState::default();
        for n in [0x11, 0x12] {
            state.apply(Command::CreateTask {
                task: Box::new(task(n << 120, 1, DesiredState::Created)),
            });
        }
        assert_eq!(state.find_task("1").err(), Some(TaskLookupError::Ambiguous));
        assert!(state.find_task("11").is_ok());
        assert_eq!(state.find_task("13").err(), Some(TaskLookupError::NotFound));
    }
}
