//! Domain records to wire types, in one place.

use crate::liveness::Liveness;
use crate::state::{Checkpoint, ClusterState, TaskRecord, WorkerRecord};
use dts_proto::pb;

pub fn checkpoint_to_pb(c: &Checkpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        position: c.position.clone(),
        display: c.display.clone(),
        event_time_ms: c.event_time_ms,
        rows_applied: c.rows_applied,
        reported_at_ms: c.reported_at_ms,
        epoch: c.epoch,
    }
}

pub fn checkpoint_from_pb(c: pb::Checkpoint) -> Checkpoint {
    Checkpoint {
        position: c.position,
        display: c.display,
        event_time_ms: c.event_time_ms,
        rows_applied: c.rows_applied,
        reported_at_ms: c.reported_at_ms,
        epoch: c.epoch,
    }
}

pub fn task_to_pb(task: &TaskRecord) -> pb::TaskInfo {
    pb::TaskInfo {
        id: task.id.to_string(),
        name: task.name.clone(),
        status: task.status().to_string(),
        phase: task.phase.clone(),
        desired: task.desired.to_string(),
        worker_id: task.assigned_worker.clone().unwrap_or_default(),
        epoch: task.epoch,
        du: task.du(),
        pending_reason: task.pending_reason.clone().unwrap_or_default(),
        last_error: task.last_error.clone().unwrap_or_default(),
        spec_json: serde_json::to_string(&task.spec.redacted()).unwrap_or_default(),
        checkpoint: task.checkpoint.as_ref().map(checkpoint_to_pb),
        created_at_ms: task.created_at_ms,
        updated_at_ms: task.updated_at_ms,
        linked_task_id: task.linked.map(|id| id.to_string()).unwrap_or_default(),
        link_role: match (task.linked, &task.spec.reverse_of) {
            (None, _) => String::new(),
            (Some(_), None) => "forward".to_string(),
            (Some(_), Some(_)) => "reverse".to_string(),
        },
        active_alerts: task
            .alerts
            .iter()
            .filter(|(_, a)| a.firing)
            .map(|(kind, a)| {
                let told = if a.delivered == Some(true) {
                    "notified"
                } else {
                    "not yet notified"
                };
                format!(
                    "{} (incident {}, {told}): {}",
                    kind.name(),
                    a.incident,
                    a.detail
                )
            })
            .collect(),
    }
}

pub fn workers_to_pb(state: &ClusterState, liveness: Option<&Liveness>) -> Vec<pb::WorkerInfo> {
    let used = state.du_used();
    state
        .workers
        .values()
        .map(|w| {
            worker_to_pb(
                state,
                w,
                used.get(w.id.as_str()).copied().unwrap_or(0),
                liveness,
            )
        })
        .collect()
}

fn worker_to_pb(
    state: &ClusterState,
    w: &WorkerRecord,
    du_used: u32,
    liveness: Option<&Liveness>,
) -> pb::WorkerInfo {
    let seen = liveness.and_then(|l| l.last_seen(&w.id));
    pb::WorkerInfo {
        id: w.id.clone(),
        address: w.address.clone(),
        du_total: w.du_total,
        du_used,
        state: w.state.to_string(),
        assigned_tasks: state
            .tasks
            .values()
            .filter(|t| t.assigned_worker.as_deref() == Some(w.id.as_str()))
            .map(|t| t.id.to_string())
            .collect(),
        // A lost worker has stopped its tasks by itself (its lease ran out
        // before the leader declared it lost): its last report is stale.
        running_tasks: seen
            .as_ref()
            .filter(|_| w.state != dts_common::model::WorkerState::Lost)
            .map(|(_, running)| running.iter().map(|r| r.task_id.clone()).collect())
            .unwrap_or_default(),
        last_heartbeat_ms_ago: seen
            .map(|(ago, _)| u64::try_from(ago.as_millis()).unwrap_or(u64::MAX)),
    }
}
