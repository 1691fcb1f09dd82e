//! Alerts a task asks for (`[alerts]`, see `dts_common::alerts`), evaluated
//! and delivered by the leader. Each condition (the task failed, its latency
//! over the limit, its full sync running long) opens an incident when it
//! begins and closes it when it ends; both are committed to the replicated
//! state first, and the webhook's acceptance of each notification after.
//! A leader that takes over finds what is owed there: a notification is
//! sent until the webhook takes it (retried every few seconds) and, once
//! taken, never again. (A leader that dies between the POST and the commit
//! of its delivery leaves the next to send it again: the incident number in
//! the payload lets a receiver tell.)

use crate::node::Coordinator;
use crate::state::{Command, TaskRecord};
use dts_common::alerts::{AlertKind, AlertSettings};
use dts_common::model::TaskStatus;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

const EVERY: Duration = Duration::from_secs(1);
/// Between two attempts to deliver one notification.
const RETRY: Duration = Duration::from_secs(3);
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Evaluates and delivers while this node leads; idles otherwise.
pub async fn run(node: Arc<Coordinator>) {
    let client = match reqwest::Client::builder().timeout(POST_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            warn!(error = %e, "cannot build the alert webhook client; alerts are off");
            return;
        }
    };
    let mut attempted: HashMap<(uuid::Uuid, AlertKind, u64, bool), Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(EVERY);
    loop {
        ticker.tick().await;
        if !node.is_leader() {
            continue;
        }
        let now = dts_common::time::now_ms();
        let (changes, owed) = {
            let data = node.state.read();
            let tasks = data.state.tasks.values();
            let changes: Vec<Command> = tasks.clone().flat_map(|t| changes(t, now)).collect();
            let owed: Vec<Notification> = tasks.flat_map(owed).collect();
            (changes, owed)
        };
        for change in changes {
            if let Err(e) = node.write(change).await {
                warn!(error = %e, "cannot record an alert change; will try again");
            }
        }
        for notification in owed {
            let key = (
                notification.task_id,
                notification.kind,
                notification.incident,
                notification.firing,
            );
            if attempted.get(&key).is_some_and(|at| at.elapsed() < RETRY) {
                continue;
            }
            attempted.insert(key, Instant::now());
            match deliver(&client, &notification).await {
                Ok(()) => {
                    info!(task_id = %notification.task_id, alert = notification.kind.name(),
                        incident = notification.incident, firing = notification.firing, "alert delivered");
                    let delivered = Command::AlertDelivered {
                        task_id: notification.task_id,
                        kind: notification.kind,
                        incident: notification.incident,
                        firing: notification.firing,
                    };
                    if let Err(e) = node.write(delivered).await {
                        warn!(error = %e, "cannot record an alert's delivery");
                    }
                }
                Err(e) => warn!(task_id = %notification.task_id, alert = notification.kind.name(),
                    error = %e, "alert webhook failed; will retry"),
            }
        }
        attempted.retain(|_, at| at.elapsed() < RETRY * 10);
    }
}

/// Whether `kind`'s condition holds for `task` now, and what it says; `None`
/// when the task does not ask for this alert.
fn condition(
    task: &TaskRecord,
    settings: &AlertSettings,
    kind: AlertKind,
    now_ms: i64,
) -> Option<(bool, String)> {
    match kind {
        AlertKind::Failure => settings.on_failure.then(|| {
            let failed = task.status() == TaskStatus::Failed;
            (failed, task.last_error.clone().unwrap_or_default())
        }),
        AlertKind::Latency => settings.latency_seconds.map(|limit| {
            let latency_ms = task.progress().and_then(|p| p["latency_ms"].as_i64());
            let running = task.status() == TaskStatus::Running;
            match latency_ms {
                Some(ms) if running && ms > limit.saturating_mul(1000) as i64 => (
                    true,
                    format!("latency {:.1} s, over {limit} s", ms as f64 / 1000.0),
                ),
                _ => (false, String::new()),
            }
        }),
        AlertKind::FullSyncHours => settings.full_sync_hours.map(|hours| {
            let running_for = now_ms - task.phase_since_ms;
            let limit = hours.saturating_mul(3_600_000) as i64;
            if task.phase == "full" && running_for > limit {
                (
                    true,
                    format!(
                        "full sync running for {:.1} h, over {hours} h",
                        running_for as f64 / 3_600_000.0
                    ),
                )
            } else {
                (false, String::new())
            }
        }),
    }
}

/// The commands that bring `task`'s incidents in line with its conditions.
fn changes(task: &TaskRecord, now_ms: i64) -> Vec<Command> {
    let Some(settings) = &task.spec.alerts else {
        return Vec::new();
    };
    AlertKind::ALL
        .iter()
        .filter_map(|&kind| {
            let (holds, detail) = condition(task, settings, kind, now_ms)?;
            let firing = task.alerts.get(&kind).is_some_and(|a| a.firing);
            (holds != firing).then_some(Command::SetAlert {
                task_id: task.id,
                kind,
                firing: holds,
                detail,
                at_ms: now_ms,
            })
        })
        .collect()
}

/// A notification the webhook has not yet taken.
struct Notification {
    task_id: uuid::Uuid,
    task_name: String,
    webhook: String,
    kind: AlertKind,
    incident: u64,
    firing: bool,
    since_ms: i64,
    detail: String,
}

fn owed(task: &TaskRecord) -> Vec<Notification> {
    let Some(settings) = &task.spec.alerts else {
        return Vec::new();
    };
    task.alerts
        .iter()
        .filter(|(_, a)| a.delivered != Some(a.firing))
        .map(|(&kind, a)| Notification {
            task_id: task.id,
            task_name: task.name.clone(),
            webhook: settings.webhook.clone(),
            kind,
            incident: a.incident,
            firing: a.firing,
            since_ms: a.since_ms,
            detail: a.detail.clone(),
        })
        .collect()
}

async fn deliver(client: &reqwest::Client, n: &Notification) -> Result<(), String> {
    let body = serde_json::json!({
        "task_id": n.task_id.to_string(),
        "task_name": n.task_name,
        "alert": n.kind.name(),
        "state": if n.firing { "firing" } else { "resolved" },
        "incident": n.incident,
        "since_ms": n.since_ms,
        "detail": n.detail,
    });
    let response = client
        .post(&n.webhook)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {}", response.status()))
    }
}
