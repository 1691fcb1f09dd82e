//! What a running task has done so far, shared between the pipeline (writer)
//! and the reporter (reader).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    pub chunks_total: u64,
    pub chunks_done: u64,
    pub rows_copied: u64,
    pub rows_estimated: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub phase: String,
    /// Per table (`db.table`) full-sync progress.
    pub tables: BTreeMap<String, TableProgress>,
    pub rows_copied: u64,
    /// Incremental: the last position committed on the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<crate::source::position::BinlogPosition>,
    /// Source timestamp (s) of the last applied event; 0 before the first.
    #[serde(default)]
    pub last_event_time: u32,
    #[serde(default)]
    pub rows_applied: u64,
    #[serde(default)]
    pub ddl_applied: u64,
    /// Unsupported DDL skipped (first words of each).
    #[serde(default)]
    pub ddl_skipped: Vec<String>,
    /// Rows copied or applied per second over the last report interval.
    #[serde(default)]
    pub rows_per_second: f64,
    /// Now minus the source time of the last applied event, at report time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// The error the pipeline is retrying (or failed) with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Conflicts settled so far (see `sink::conflict`).
    #[serde(default, skip_serializing_if = "is_none_settled")]
    pub conflicts: crate::sink::conflict::Summary,
    /// Data verification (see `verify`), once one ran or runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::Summary>,
    /// The prechecks of this run's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precheck: Option<dts_common::precheck::Report>,
}

fn is_none_settled(summary: &crate::sink::conflict::Summary) -> bool {
    summary.total == 0
}

#[derive(Default)]
pub struct Progress {
    inner: Mutex<Snapshot>,
    /// The apply phase's conflict log, read at each snapshot.
    conflicts: Mutex<Option<std::sync::Arc<crate::sink::conflict::ConflictLog>>>,
    /// Signalled when the phase changes, so the reporter tells the
    /// coordinator at once instead of at its next tick (a user waiting for
    /// `done` should not wait a report interval more).
    phase_changed: tokio::sync::Notify,
    /// Everything the source logged up to here is applied (or is nothing
    /// for the task): the last commit's position, or where the source's
    /// heartbeat found an idle task. What verification waits for.
    reached: Mutex<Option<crate::source::position::BinlogPosition>>,
}

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_phase(&self, phase: &str) {
        let mut inner = self.lock();
        if inner.phase != phase {
            inner.phase = phase.to_string();
            // A permit is kept if the reporter is not waiting right now.
            self.phase_changed.notify_one();
        }
    }

    /// Resolves at the next phase change (or at once if one is unreported).
    pub async fn phase_changed(&self) {
        self.phase_changed.notified().await;
    }

    pub fn phase(&self) -> String {
        self.lock().phase.clone()
    }

    pub fn set_table(&self, table: &str, progress: TableProgress) {
        let mut inner = self.lock();
        inner.tables.insert(table.to_string(), progress);
        inner.rows_copied = inner.tables.values().map(|t| t.rows_copied).sum();
    }

    /// More of the table's plan is stored (plans are stored a batch at a time).
    pub fn chunks_planned(&self, table: &str, chunks: u64) {
        if let Some(t) = self.lock().tables.get_mut(table) {
            t.chunks_total += chunks;
        }
    }

    pub fn chunk_done(&self, table: &str, rows: u64) {
        let mut inner = self.lock();
        if let Some(t) = inner.tables.get_mut(table) {
            t.chunks_done += 1;
            t.rows_copied += rows;
        }
        inner.rows_copied += rows;
    }

    pub fn applied(
        &self,
        position: crate::source::position::BinlogPosition,
        event_time: u32,
        rows_applied: u64,
    ) {
        self.reach(&position);
        let mut s = self.lock();
        s.applied = Some(position);
        if event_time > 0 {
            s.last_event_time = event_time;
        }
        s.rows_applied = rows_applied;
    }

    /// Everything the source had logged at `at_ms` is applied: latency
    /// counts from then (an idle source's last event may be hours old).
    pub fn caught_up(&self, at_ms: i64) {
        let mut s = self.lock();
        let at = u32::try_from(at_ms / 1000).unwrap_or(0);
        s.last_event_time = s.last_event_time.max(at);
    }

    /// Everything up to `position` is applied (see `reached`).
    pub fn reach(&self, position: &crate::source::position::BinlogPosition) {
        let mut reached = self.reached.lock().unwrap_or_else(|p| p.into_inner());
        if reached.as_ref().is_none_or(|r| r.at_or_before(position)) {
            *reached = Some(position.clone());
        }
    }

    /// Whether everything up to `position` is applied.
    pub fn has_reached(&self, position: &crate::source::position::BinlogPosition) -> bool {
        self.reached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|r| position.at_or_before(r))
    }

    /// A pass's summary (the incremental check's part is kept).
    pub fn set_precheck(&self, report: dts_common::precheck::Report) {
        self.lock().precheck = Some(report);
    }

    pub fn set_verify(&self, mut summary: crate::verify::Summary) {
        let mut s = self.lock();
        if let Some(current) = s.verify.take() {
            summary.incremental = summary.incremental.or(current.incremental);
        }
        s.verify = Some(summary);
    }

    /// The incremental check's part of the verification summary.
    pub fn set_verify_incremental(&self, part: crate::verify::incremental::IncrementalSummary) {
        let mut s = self.lock();
        s.verify.get_or_insert_with(Default::default).incremental = Some(part);
    }

    pub fn ddl_applied(&self) {
        self.lock().ddl_applied += 1;
    }

    pub fn ddl_skipped(&self, head: &str) {
        let mut s = self.lock();
        if s.ddl_skipped.len() < 100 {
            s.ddl_skipped.push(head.to_string());
        }
    }

    pub fn set_error(&self, error: Option<String>) {
        self.lock().error = error;
    }

    /// A one-line summary for `task show`.
    pub fn display(&self) -> String {
        let s = self.lock();
        let (done, total) = s
            .tables
            .values()
            .fold((0, 0), |(d, t), p| (d + p.chunks_done, t + p.chunks_total));
        match (&s.applied, total) {
            (Some(applied), _) => {
                format!("{}: at {applied}, {} rows applied", s.phase, s.rows_applied)
            }
            (None, 0) => s.phase.clone(),
            (None, _) => format!(
                "{}: {done}/{total} chunks, {} rows copied",
                s.phase, s.rows_copied
            ),
        }
    }

    /// Fills in the rate and latency as of `now_ms`, given the rows counted at
    /// the previous report and the time since. Returns the rows counted now.
    pub fn measure(&self, now_ms: i64, previous_rows: u64, elapsed_s: f64) -> u64 {
        let mut s = self.lock();
        let rows = s.rows_copied + s.rows_applied;
        if elapsed_s > 0.0 {
            s.rows_per_second = rows.saturating_sub(previous_rows) as f64 / elapsed_s;
        }
        s.latency_ms =
            (s.last_event_time > 0).then(|| (now_ms - i64::from(s.last_event_time) * 1000).max(0));
        rows
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.lock().clone();
        let log = self
            .conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(log) = log {
            snapshot.conflicts = log.summary();
        }
        snapshot
    }

    /// Reports the conflicts `log` counts from now on.
    pub fn set_conflict_log(&self, log: std::sync::Arc<crate::sink::conflict::ConflictLog>) {
        *self.conflicts.lock().unwrap_or_else(|p| p.into_inner()) = Some(log);
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;
    use std::time::Duration;

    #[tokio::test]
    async fn a_phase_change_is_signalled_even_when_nobody_waits_yet() {
        let progress = Progress::default();
        progress.set_phase("full");
        tokio::time::timeout(Duration::from_secs(1), progress.phase_changed())
            .await
            .expect("the change made before waiting is kept");
        progress.set_phase("full");
        let unchanged =
            tokio::time::timeout(Duration::from_millis(50), progress.phase_changed()).await;
        assert!(unchanged.is_err(), "setting the same phase is no change");
    }
}
