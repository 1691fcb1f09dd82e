//! One task running on this worker under one epoch. The runtime owns the
//! task's pipeline and reports its progress; a report refused for a stale
//! epoch stops it at once, since another worker now owns the task.

use dts_common::CoordinatorClient;
use dts_proto::pb;
use dts_proto::pb::worker_control_client::WorkerControlClient;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

/// What the agent knows of a runtime it started.
pub struct RuntimeHandle {
    pub task_id: String,
    pub epoch: u64,
    phase: Arc<Mutex<String>>,
    cancel: CancellationToken,
    join: JoinHandle<()>,
}

impl RuntimeHandle {
    pub fn phase(&self) -> String {
        self.phase.lock().map(|p| p.clone()).unwrap_or_default()
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

    /// Stops without waiting (the lease watchdog, which must not block).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

pub struct RuntimeContext {
    pub worker_id: String,
    pub client: Arc<CoordinatorClient>,
    pub report_interval: Duration,
}

/// Starts the runtime of `assignment`.
pub fn spawn(ctx: Arc<RuntimeContext>, assignment: pb::Assignment) -> RuntimeHandle {
    let cancel = CancellationToken::new();
    let phase = Arc::new(Mutex::new("starting".to_string()));
    let span = info_span!("task", task_id = %assignment.task_id, epoch = assignment.epoch);
    let handle_phase = phase.clone();
    let task_id = assignment.task_id.clone();
    let epoch = assignment.epoch;
    let join = tokio::spawn(run(ctx, assignment, phase, cancel.clone()).instrument(span));
    RuntimeHandle {
        task_id,
        epoch,
        phase: handle_phase,
        cancel,
        join,
    }
}

/// The task's life under this epoch. The data pipeline (schema, full and
/// incremental sync) plugs in here; until it does the runtime holds the task
/// idle, reporting its state so that ownership and fencing are exercised.
async fn run(
    ctx: Arc<RuntimeContext>,
    assignment: pb::Assignment,
    phase: Arc<Mutex<String>>,
    cancel: CancellationToken,
) {
    info!(name = %assignment.name, du = assignment.du, "task runtime started");
    set_phase(&phase, "idle");
    let mut ticker = tokio::time::interval(ctx.report_interval);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                info!("task runtime stopped");
                return;
            }
            _ = ticker.tick() => {}
        }
        match report(&ctx, &assignment, &current_phase(&phase)).await {
            Ok(()) => {}
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                warn!(reason = %status.message(), "fenced off by the coordinator; stopping");
                return;
            }
            Err(status) => warn!(error = %status.message(), "progress report failed; will retry"),
        }
    }
}

fn set_phase(phase: &Mutex<String>, value: &str) {
    if let Ok(mut p) = phase.lock() {
        *p = value.to_string();
    }
}

fn current_phase(phase: &Mutex<String>) -> String {
    phase.lock().map(|p| p.clone()).unwrap_or_default()
}

async fn report(
    ctx: &RuntimeContext,
    assignment: &pb::Assignment,
    phase: &str,
) -> Result<(), tonic::Status> {
    let request = pb::ProgressReport {
        worker_id: ctx.worker_id.clone(),
        task_id: assignment.task_id.clone(),
        epoch: assignment.epoch,
        phase: phase.to_string(),
        checkpoint: assignment.checkpoint.clone(),
        error: String::new(),
        fatal: false,
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
