//! Coalesces progress reports from many tasks into one Raft entry per short
//! window, so checkpoint traffic does not grow the log one entry per report.

use crate::error::{Error, Result};
use crate::node::Coordinator;
use crate::state::{Command, ProgressReport};
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

type Pending = (ProgressReport, oneshot::Sender<Result<()>>);

pub struct ReportBatcher {
    tx: mpsc::Sender<Pending>,
}

const QUEUE_DEPTH: usize = 65_536;
const MAX_BATCH: usize = 4096;

impl ReportBatcher {
    pub fn new(node: Weak<Coordinator>, window: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(node, rx, window));
        Self { tx }
    }

    /// Resolves once the report is committed, or with why it was not.
    pub async fn submit(&self, report: ProgressReport) -> Result<()> {
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send((report, done_tx))
            .await
            .map_err(|_| Error::Unavailable("coordinator is shutting down".into()))?;
        done_rx
            .await
            .map_err(|_| Error::Unavailable("coordinator is shutting down".into()))?
    }
}

async fn run(node: Weak<Coordinator>, mut rx: mpsc::Receiver<Pending>, window: Duration) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => batch.push(item),
                Ok(None) | Err(_) => break,
            }
        }
        let Some(node) = node.upgrade() else { return };
        let reports: Vec<ProgressReport> = batch.iter().map(|(r, _)| r.clone()).collect();
        let command = Command::Reports {
            reports,
            at_ms: dts_common::time::now_ms(),
        };
        match node.write(command).await {
            Ok(outcome) => {
                for (index, (report, done)) in batch.into_iter().enumerate() {
                    let result = if outcome.stale_reports.contains(&index) {
                        Err(stale(&node, &report))
                    } else {
                        Ok(())
                    };
                    let _ = done.send(result);
                }
            }
            Err(e) => {
                warn!(error = %e, count = batch.len(), "could not commit progress reports");
                let message = e.to_string();
                for (_, done) in batch {
                    let _ = done.send(Err(Error::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// Why a report was refused, from the state as applied now.
pub fn stale(node: &Coordinator, report: &ProgressReport) -> Error {
    let state = node.state.read();
    match state.state.tasks.get(&report.task_id) {
        None => {
            Error::FailedPrecondition(format!("task {} no longer exists; stop it", report.task_id))
        }
        Some(task) => Error::StaleEpoch {
            task_id: report.task_id.to_string(),
            worker_id: report.worker_id.clone(),
            reported: report.epoch,
            current: task.epoch,
            owner: task
                .assigned_worker
                .as_deref()
                .map_or_else(|| "no worker".to_string(), |w| format!("worker {w}")),
        },
    }
}
