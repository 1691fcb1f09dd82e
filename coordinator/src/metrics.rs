//! The coordinator's Prometheus metrics (served when `metrics_listen` is
//! set; see `dts_common::metrics`). Every node exports its Raft view; the
//! leader, which alone knows which workers are alive, also exports the
//! workers, the capacity and every task from the replicated state (each
//! task's last progress report). Refreshed every second.

use crate::node::Coordinator;
use crate::service::convert::workers_to_pb;
use metrics::gauge;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);

/// Exports until the node stops.
pub async fn run(node: Arc<Coordinator>) {
    let mut ticker = tokio::time::interval(EVERY);
    loop {
        ticker.tick().await;
        export(&node);
    }
}

fn export(node: &Coordinator) {
    let raft = node.metrics();
    let leader = node.is_leader();
    gauge!("dts_raft_term").set(raft.current_term as f64);
    gauge!("dts_raft_is_leader").set(f64::from(u8::from(leader)));
    gauge!("dts_raft_has_leader").set(f64::from(u8::from(raft.current_leader.is_some())));
    gauge!("dts_raft_last_log_index").set(raft.last_log_index.unwrap_or(0) as f64);
    gauge!("dts_raft_applied_index").set(raft.last_applied.map_or(0, |log| log.index) as f64);
    if !leader {
        return;
    }
    let data = node.state.read();
    let workers = workers_to_pb(&data.state, Some(&node.liveness));
    for state in ["online", "lost", "draining"] {
        let count = workers.iter().filter(|w| w.state == state).count();
        gauge!("dts_workers", "state" => state).set(count as f64);
    }
    let live = workers.iter().filter(|w| w.state != "lost");
    let (total, used) = live.fold((0u64, 0u64), |(t, u), w| {
        (t + u64::from(w.du_total), u + u64::from(w.du_used))
    });
    gauge!("dts_du_total").set(total as f64);
    gauge!("dts_du_used").set(used as f64);
    gauge!("dts_du_free").set(total.saturating_sub(used) as f64);
    for task in data.state.tasks.values() {
        let id = task.id.to_string();
        let status = task.status().to_string();
        let labels = [("task_id", id.clone()), ("name", task.name.clone())];
        gauge!("dts_task_status", "task_id" => id.clone(), "name" => task.name.clone(), "status" => status.clone())
            .set(1.0);
        gauge!("dts_task_failed", &labels).set(f64::from(u8::from(status == "failed")));
        gauge!("dts_task_running", &labels).set(f64::from(u8::from(status == "running")));
        gauge!("dts_task_phase", "task_id" => id.clone(), "name" => task.name.clone(), "phase" => task.phase.clone())
            .set(1.0);
        let Some(progress) = task.progress() else {
            continue;
        };
        if let Some(latency) = progress["latency_ms"].as_i64() {
            gauge!("dts_task_latency_seconds", &labels).set(latency as f64 / 1000.0);
        }
        let number = |key: &str| progress[key].as_f64().unwrap_or(0.0);
        gauge!("dts_task_rows_copied", &labels).set(number("rows_copied"));
        gauge!("dts_task_rows_applied", &labels).set(number("rows_applied"));
        gauge!("dts_task_rows_per_second", &labels).set(number("rows_per_second"));
        gauge!("dts_task_ddl_applied", &labels).set(number("ddl_applied"));
        gauge!("dts_task_conflicts", &labels)
            .set(progress["conflicts"]["total"].as_f64().unwrap_or(0.0));
        // The last verification pass's; 0 before any.
        gauge!("dts_task_verify_differences", &labels)
            .set(progress["verify"]["differences"].as_f64().unwrap_or(0.0));
        gauge!("dts_task_verify_rows_compared", &labels)
            .set(progress["verify"]["rows_compared"].as_f64().unwrap_or(0.0));
        let (done, total) = progress["tables"].as_object().into_iter().flatten().fold(
            (0.0, 0.0),
            |(d, t), (_, table)| {
                (
                    d + table["chunks_done"].as_f64().unwrap_or(0.0),
                    t + table["chunks_total"].as_f64().unwrap_or(0.0),
                )
            },
        );
        if total > 0.0 {
            gauge!("dts_task_copy_progress_ratio", &labels).set(done / total);
        }
    }
}
