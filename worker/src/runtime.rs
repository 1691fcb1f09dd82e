//! One task running on this worker under one epoch: the data pipeline plus a
//! reporter. Connection failures are retried within `retry.connect_minutes`,
//! other failures within `retry.other_minutes`; past that, or on an error a
//! person must fix, the task is reported failed. A report refused for a stale
//! epoch stops the runtime at once: another worker owns the task now.

use crate::error::{Disposition, SyncError};
use crate::phases::{self, TaskContext};
use crate::progress::Progress;
use dts_common::spec::{RetryPolicy, TaskSpec};
use dts_common::CoordinatorClient;
use dts_proto::pb;
use dts_proto::pb::worker_control_client::WorkerControlClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

/// What the agent knows of a runtime it started.
pub struct RuntimeHandle {
    pub task_id: String,
    pub epoch: u64,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    join: JoinHandle<()>,
    /// Verification passes users asked for, as the leader counts them.
    verify_requests: tokio::sync::watch::Sender<u64>,
}

impl RuntimeHandle {
    pub fn phase(&self) -> String {
        self.progress.phase()
    }

    /// Finished on its own (fenced off, or failed)?
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Asks the runtime to stop and waits until it has.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.join.await;
    }

    /// The leader counts `requested` verification passes asked for.
    pub fn request_verify(&self, requested: u64) {
        self.verify_requests.send_if_modified(|current| {
            let more = requested > *current;
            *current = (*current).max(requested);
            more
        });
    }

    /// Stops without waiting (the lease watchdog, which must not block).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

pub struct RuntimeContext {
    pub worker_id: String,
    pub client: Arc<CoordinatorClient>,
    pub report_interval: Duration,
    /// One minute of a retry window (shortened only by tests).
    pub retry_minute: Duration,
}

/// Starts the runtime of `assignment`.
pub fn spawn(ctx: Arc<RuntimeContext>, assignment: pb::Assignment) -> RuntimeHandle {
    let cancel = CancellationToken::new();
    let progress = Arc::new(Progress::default());
    progress.set_phase("starting");
    let span = info_span!("task", task_id = %assignment.task_id, epoch = assignment.epoch);
    let task_id = assignment.task_id.clone();
    let epoch = assignment.epoch;
    let (verify_requests, requested) = tokio::sync::watch::channel(assignment.verify_requested);
    let join = tokio::spawn(
        run(ctx, assignment, progress.clone(), cancel.clone(), requested).instrument(span),
    );
    RuntimeHandle {
        task_id,
        epoch,
        progress,
        cancel,
        join,
        verify_requests,
    }
}

async fn run(
    ctx: Arc<RuntimeContext>,
    assignment: pb::Assignment,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    verify_requests: tokio::sync::watch::Receiver<u64>,
) {
    info!(name = %assignment.name, du = assignment.du, "task runtime started");
    let spec: TaskSpec = match serde_json::from_str(&assignment.spec_json) {
        Ok(spec) => spec,
        Err(e) => {
            let message = format!("the coordinator sent an unreadable task spec: {e}");
            let _ = report(&ctx, &assignment, &progress, Some(&message), true).await;
            return;
        }
    };
    let retry = spec.retry;
    let task = TaskContext {
        task_id: assignment.task_id.clone(),
        epoch: assignment.epoch,
        spec,
        progress: progress.clone(),
        cancel: cancel.clone(),
        verify_requests,
    };
    let pipeline = run_with_retries(&task, retry, ctx.retry_minute);
    tokio::pin!(pipeline);
    // Reports run beside the pipeline, never instead of it: a report stuck on
    // an unreachable coordinator must not stall an apply transaction that
    // holds the destination's fence lock (a new owner's claim waits for it).
    let reporter = report_until_fenced(&ctx, &assignment, &progress);
    tokio::select! {
        outcome = &mut pipeline => {
            match outcome {
                Ok(()) | Err(SyncError::Stopped) => info!("task runtime stopped"),
                Err(SyncError::Fenced { mine, current }) => {
                    warn!(mine, current, "the destination fenced this runtime off; stopping");
                }
                Err(e) => {
                    error!(error = %e, "task failed");
                    let message = e.to_string();
                    progress.set_error(Some(message.clone()));
                    // Delivered until the coordinator has it or fences us off.
                    while !cancel.is_cancelled() {
                        match report(&ctx, &assignment, &progress, Some(&message), true).await {
                            Err(status) if status.code() != tonic::Code::FailedPrecondition => {
                                tokio::time::sleep(ctx.report_interval).await;
                            }
                            _ => break,
                        }
                    }
                }
            }
        }
        reason = reporter => {
            warn!(%reason, "fenced off by the coordinator; stopping");
            cancel.cancel();
            let _ = (&mut pipeline).await;
        }
    }
}

/// Reports progress every interval; returns the coordinator's reason once it
/// refuses this epoch.
async fn report_until_fenced(
    ctx: &RuntimeContext,
    assignment: &pb::Assignment,
    progress: &Progress,
) -> String {
    let mut ticker = tokio::time::interval(ctx.report_interval);
    // After a slow report, wait a full interval rather than firing a burst.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rate_base = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = progress.phase_changed() => {}
        }
        let now = Instant::now();
        let counted = progress.measure(
            dts_common::time::now_ms(),
            rate_base.1,
            now.duration_since(rate_base.0).as_secs_f64(),
        );
        rate_base = (now, counted);
        let snapshot = progress.snapshot();
        export_metrics(&assignment.task_id, &snapshot);
        let error = snapshot.error;
        match report(ctx, assignment, progress, error.as_deref(), false).await {
            Ok(()) => {}
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                return status.message().to_string();
            }
            Err(status) => warn!(error = %status.message(), "progress report failed; will retry"),
        }
    }
}

/// The task's figures as this worker sees them, for its `/metrics` (a task
/// that moves away stops being refreshed here and drops out).
fn export_metrics(task_id: &str, snapshot: &crate::progress::Snapshot) {
    let labels = [("task_id", task_id.to_string())];
    metrics::gauge!("dts_worker_task_running", &labels).set(1.0);
    if let Some(latency) = snapshot.latency_ms {
        metrics::gauge!("dts_worker_task_latency_seconds", &labels).set(latency as f64 / 1000.0);
    }
    metrics::gauge!("dts_worker_task_rows_per_second", &labels).set(snapshot.rows_per_second);
    metrics::gauge!("dts_worker_task_rows_copied", &labels).set(snapshot.rows_copied as f64);
    metrics::gauge!("dts_worker_task_rows_applied", &labels).set(snapshot.rows_applied as f64);
    metrics::gauge!("dts_worker_task_conflicts", &labels).set(snapshot.conflicts.total as f64);
    metrics::gauge!("dts_worker_task_retrying", &labels)
        .set(f64::from(u8::from(snapshot.error.is_some())));
    if let Some(verify) = &snapshot.verify {
        metrics::gauge!("dts_worker_task_verify_differences", &labels)
            .set(verify.differences as f64);
        metrics::gauge!("dts_worker_task_verify_unsettled", &labels).set(verify.unsettled as f64);
        metrics::gauge!("dts_worker_task_verify_rows_compared", &labels)
            .set(verify.rows_compared as f64);
        metrics::gauge!("dts_worker_task_verify_pass", &labels).set(verify.pass as f64);
    }
}

/// Runs the pipeline, retrying what may heal by itself within the task's windows.
async fn run_with_retries(
    task: &TaskContext,
    retry: RetryPolicy,
    minute: Duration,
) -> Result<(), SyncError> {
    let mut failing_since: Option<(Instant, Disposition)> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        let progress_before = rows_moved(&task.progress);
        let error = match phases::run(task).await {
            Ok(()) => return Ok(()),
            // Nobody asked it to stop: ending here would leave the task
            // assigned to a runtime that no longer runs, reported by no one.
            Err(SyncError::Stopped) if !task.cancel.is_cancelled() => {
                SyncError::Internal("the pipeline stopped without being asked to".into())
            }
            Err(e) => e,
        };
        let disposition = error.disposition();
        let window = match disposition {
            Disposition::RetryConnect => minute * retry.connect_minutes,
            Disposition::RetryOther => minute * retry.other_minutes,
            Disposition::Fail | Disposition::Stop => return Err(error),
        };
        // Progress since the last failure starts a new streak.
        if rows_moved(&task.progress) != progress_before {
            failing_since = None;
            backoff = Duration::from_millis(500);
        }
        let (since, _) = *failing_since.get_or_insert((Instant::now(), disposition));
        if since.elapsed() >= window {
            return Err(error);
        }
        warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "task error; retrying");
        task.progress.set_error(Some(error.to_string()));
        tokio::select! {
            _ = task.cancel.cancelled() => return Err(SyncError::Stopped),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Rows copied plus rows applied: any change means the task made progress.
fn rows_moved(progress: &Progress) -> u64 {
    let snapshot = progress.snapshot();
    snapshot.rows_copied + snapshot.rows_applied
}

async fn report(
    ctx: &RuntimeContext,
    assignment: &pb::Assignment,
    progress: &Progress,
    error: Option<&str>,
    fatal: bool,
) -> Result<(), tonic::Status> {
    let snapshot = progress.snapshot();
    let request = pb::ProgressReport {
        worker_id: ctx.worker_id.clone(),
        task_id: assignment.task_id.clone(),
        epoch: assignment.epoch,
        phase: snapshot.phase.clone(),
        checkpoint: Some(pb::Checkpoint {
            position: serde_json::to_string(&snapshot).unwrap_or_default(),
            display: progress.display(),
            rows_applied: snapshot.rows_copied + snapshot.rows_applied,
            event_time_ms: i64::from(snapshot.last_event_time) * 1000,
            ..Default::default()
        }),
        error: error.unwrap_or_default().to_string(),
        fatal,
    };
    ctx.client
        .call(|channel| {
            let request = request.clone();
            async move {
                WorkerControlClient::new(channel)
                    .report_progress(request)
                    .await
            }
        })
        .await
        .map(|_| ())
}
