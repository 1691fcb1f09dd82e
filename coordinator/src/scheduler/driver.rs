//! The leader-only loop that turns the scheduler's plans into Raft commands.

use crate::node::Coordinator;
use crate::scheduler::plan;
use crate::state::Command;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

const TICK: Duration = Duration::from_millis(200);

pub async fn run(node: Arc<Coordinator>) {
    let lease = node.config.worker_lease();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = node.schedule_now.notified() => {}
        }
        let metrics = node.metrics();
        let leading = node.is_leader().then_some(metrics.current_term);
        node.liveness.observe_leadership(leading);
        if leading.is_none() {
            continue;
        }
        let plan = {
            let data = node.state.read();
            let expired = node.liveness.expired(&data.state.workers, lease);
            plan(&data.state, &expired)
        };
        if plan.is_empty() {
            continue;
        }
        for worker in &plan.lost_workers {
            info!(worker_id = %worker, lease_ms = lease.as_millis() as u64, "worker lease expired; declaring it lost");
        }
        for p in &plan.placements {
            match &p.worker {
                Some(w) => {
                    info!(task_id = %p.task_id, worker_id = %w, epoch = p.new_epoch, "task assigned")
                }
                None => {
                    info!(task_id = %p.task_id, reason = p.pending_reason.as_deref().unwrap_or("not runnable"), "task unassigned")
                }
            }
        }
        // Each placement concerns the task's worker before and after it.
        let affected: Vec<String> = {
            let data = node.state.read();
            plan.placements
                .iter()
                .flat_map(|p| {
                    let before = data
                        .state
                        .tasks
                        .get(&p.task_id)
                        .and_then(|t| t.assigned_worker.clone());
                    before.into_iter().chain(p.worker.clone())
                })
                .collect()
        };
        let command = Command::ApplyPlan {
            lost_workers: plan.lost_workers,
            placements: plan.placements,
            at_ms: dts_common::time::now_ms(),
        };
        match node.write(command).await {
            // No receiver (no worker watching) is not an error.
            Ok(_) if !affected.is_empty() => {
                let _ = node.assignments_changed.send(Arc::new(affected));
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not commit the scheduling plan"),
        }
    }
}
