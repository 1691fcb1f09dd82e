//! Data verification: whether the destination holds what the source has,
//! through the task's route (renames, column selection, WHERE filters,
//! merges), while the task runs. A pass compares every table chunk by chunk
//! (`pass`), by checksum first and row by row where the sums differ; a row
//! is reported only if it still differs once the task has applied what the
//! source had when it was read (`recheck`), so changes in flight are not
//! differences. Passes run when the task's `verify` asks (once the copy is
//! in) and whenever a user asks (`dtsctl task verify ID --run`). With
//! `verify = "incremental"` (or "both"), the rows every applied transaction
//! changed are compared a moment later (`incremental`).

pub mod changed;
pub mod difference;
pub mod incremental;
pub mod pass;
pub mod recheck;
pub mod sides;

use crate::endpoint::Database;
use crate::error::{SyncError, SyncResult};
use crate::meta::verify::{self as saved, PassState};
use crate::meta::Meta;
use crate::progress::Progress;
use crate::source::catalog::Table;
use changed::ChangedKeys;
use difference::Difference;
use dts_common::spec::VerifyMode;
use incremental::IncrementalCheck;
use pass::FullPass;
use recheck::Recheck;
use serde::{Deserialize, Serialize};
use sides::TableSides;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long a verifier that failed waits before it tries again.
const RETRY: Duration = Duration::from_secs(5);

/// What `task show`, `task verify` and the metrics report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The task's `verify`.
    pub mode: String,
    /// The pass under way or last finished (numbered per task).
    pub pass: u64,
    /// `waiting` (for the task to catch up), `running`, `done`, `retrying`.
    pub status: String,
    pub tables_total: u64,
    pub tables_done: u64,
    pub chunks: u64,
    pub rows_compared: u64,
    pub differences: u64,
    /// Keys not compared because the task did not catch up in time.
    pub unsettled: u64,
    pub started_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// Times the pass was taken up again after its runtime stopped.
    #[serde(default)]
    pub resumed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The pass's first differences (all of them are in the meta schema's
    /// `verify_differences`, up to a thousand).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<Difference>,
    /// The incremental check's, where it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<incremental::IncrementalSummary>,
}

impl Summary {
    pub fn of(
        mode: &str,
        state: &PassState,
        tables_total: u64,
        found: &[Difference],
        status: &str,
    ) -> Self {
        Self {
            mode: mode.to_string(),
            pass: state.pass,
            status: status.to_string(),
            tables_total,
            tables_done: state.tables_done.len() as u64,
            chunks: state.chunks,
            rows_compared: state.rows_compared,
            differences: state.differences,
            unsettled: state.unsettled,
            started_ms: state.started_ms,
            finished_ms: state.finished_ms,
            resumed: state.resumed,
            error: None,
            found: found.to_vec(),
            incremental: None,
        }
    }
}

pub struct Verifier<'a> {
    pub route: &'a dts_common::route::Route,
    pub source: &'a Database,
    pub destination: &'a Database,
    pub meta: &'a Meta,
    pub tables: &'a [Table],
    pub progress: &'a Progress,
    pub mode: VerifyMode,
    /// The task applies the source's binlog: passes wait for it to be in
    /// strict apply, and rows are compared only once it is past them.
    pub follows_binlog: bool,
    /// The destination is written too (see `recheck`).
    pub both_ways: bool,
    /// Passes users asked for (`task verify --run`), counted by the
    /// coordinator.
    pub requests: watch::Receiver<u64>,
    /// The keys the apply lanes commit, for the incremental check (with
    /// `verify = "incremental"` or "both").
    pub changed: Option<Arc<ChangedKeys>>,
    pub cancel: &'a CancellationToken,
}

impl Verifier<'_> {
    /// Runs the passes due, as they come due, and the incremental check,
    /// until the task stops. Verification that fails never fails the
    /// task: it is reported and tried again.
    pub async fn run(&self) -> SyncResult<()> {
        let tables = self.sides();
        let passes = self.run_passes(&tables);
        let checks = async {
            match &self.changed {
                Some(changed) => self.run_incremental(changed.clone(), &tables).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = passes => ended,
            ended = checks => ended,
        }
    }

    async fn run_passes(&self, tables: &[TableSides]) -> SyncResult<()> {
        let mut requests = self.requests.clone();
        loop {
            match self.run_due(tables).await {
                Ok(true) => continue,
                Ok(false) => {
                    tokio::select! {
                        changed = requests.changed() => {
                            if changed.is_err() {
                                // The runtime is going away.
                                self.cancel.cancelled().await;
                                return Err(SyncError::Stopped);
                            }
                        }
                        _ = self.cancel.cancelled() => return Err(SyncError::Stopped),
                    }
                }
                Err(e) => {
                    self.failed(e, |summary, error| {
                        summary.status = "retrying".into();
                        summary.error = Some(error);
                    })
                    .await?
                }
            }
        }
    }

    async fn run_incremental(
        &self,
        changed: Arc<ChangedKeys>,
        tables: &[TableSides],
    ) -> SyncResult<()> {
        loop {
            let check = IncrementalCheck {
                source: self.source,
                destination: self.destination,
                meta: self.meta,
                tables: tables.iter().map(|t| (t.source_label(), t)).collect(),
                changed: changed.clone(),
                recheck: self.recheck(),
                progress: self.progress,
            };
            if let Err(e) = check.run().await {
                self.failed(e, |summary, error| summary.error = Some(error))
                    .await?;
            }
        }
    }

    /// Reports a failure of verification and waits before it is tried
    /// again; the task's own stop or fencing ends verification instead.
    async fn failed(
        &self,
        error: SyncError,
        report: impl FnOnce(&mut Summary, String),
    ) -> SyncResult<()> {
        if matches!(error, SyncError::Stopped | SyncError::Fenced { .. }) {
            return Err(error);
        }
        warn!(error = %error, "verification failed; trying again");
        let mut summary = self.progress.snapshot().verify.unwrap_or_default();
        report(&mut summary, error.to_string());
        self.progress.set_verify(summary);
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => Ok(()),
            _ = self.cancel.cancelled() => Err(SyncError::Stopped),
        }
    }

    fn recheck(&self) -> Recheck<'_> {
        Recheck {
            source: self.source,
            destination: self.destination,
            progress: self.progress,
            follows_binlog: self.follows_binlog,
            both_ways: self.both_ways,
            cancel: self.cancel,
        }
    }

    /// The pass the task should have run by now: one for the task's own
    /// `verify = "full"` (or "both"), one more per request.
    fn due(&self) -> u64 {
        *self.requests.borrow() + u64::from(self.mode.full())
    }

    /// Runs the pass due, or takes up the one a stopped runtime left; false
    /// when there is none.
    async fn run_due(&self, tables: &[TableSides]) -> SyncResult<bool> {
        let due = self.due();
        let mut dst = self.destination.conn().await?;
        let stored = saved::load(self.meta, &mut dst).await?;
        let mode = mode_name(self.mode);
        let (state, fresh) = match stored {
            Some(state) if state.finished && state.pass >= due => {
                let found =
                    saved::differences(self.meta, &mut dst, state.pass, pass::SHOWN as u64).await?;
                let summary = Summary::of(mode, &state, tables.len() as u64, &found, "done");
                self.progress.set_verify(summary);
                return Ok(false);
            }
            Some(mut state) if !state.finished => {
                state.resumed += 1;
                (state, false)
            }
            _ if due == 0 => return Ok(false),
            previous => (
                PassState {
                    pass: due.max(previous.map_or(0, |p| p.pass + 1)),
                    started_ms: dts_common::time::now_ms(),
                    ..PassState::default()
                },
                true,
            ),
        };
        drop(dst);
        if self.follows_binlog {
            self.wait_for_strict_apply(&state, tables.len() as u64)
                .await?;
        }
        FullPass {
            source: self.source,
            destination: self.destination,
            meta: self.meta,
            tables,
            recheck: self.recheck(),
            progress: self.progress,
            mode,
        }
        .run(state, fresh)
        .await?;
        Ok(true)
    }

    /// Rows are compared once the catch-up is over: before, the destination
    /// is behind by the whole copy.
    async fn wait_for_strict_apply(&self, state: &PassState, tables: u64) -> SyncResult<()> {
        let mut said = false;
        while self.progress.phase() != "incremental" {
            if !said {
                let summary = Summary::of(mode_name(self.mode), state, tables, &[], "waiting");
                self.progress.set_verify(summary);
                said = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.cancel.cancelled() => return Err(SyncError::Stopped),
            }
        }
        Ok(())
    }

    /// The task's tables as verification reads them, in name order. A
    /// table whose route leaves out some operations (`dml`) differs from
    /// its source by design and is not compared.
    fn sides(&self) -> Vec<TableSides> {
        let mut targets: BTreeMap<&crate::source::catalog::TableName, usize> = BTreeMap::new();
        for table in self.tables {
            *targets.entry(&table.target).or_default() += 1;
        }
        let every_change = |t: &&Table| {
            self.route
                .table(&t.db, &t.name)
                .ok()
                .flatten()
                .is_none_or(|route| route.dml == dts_common::route::DmlSet::ALL)
        };
        let mut sides: Vec<TableSides> = self
            .tables
            .iter()
            .filter(every_change)
            .map(|t| TableSides::new(t, targets.get(&t.target).copied().unwrap_or(0) > 1))
            .collect();
        sides.sort_by_key(TableSides::source_label);
        sides
    }
}

fn mode_name(mode: VerifyMode) -> &'static str {
    match mode {
        VerifyMode::Off => "off",
        VerifyMode::Full => "full",
        VerifyMode::Incremental => "incremental",
        VerifyMode::Both => "both",
    }
}
