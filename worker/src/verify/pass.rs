//! A full pass: every table of the task compared chunk by chunk in key
//! order, through the route, while the task runs and without locking (each
//! read is one consistent statement). Where the pass stands is saved after
//! every chunk (see `meta::verify`), so a pass survives its worker.

use crate::endpoint::Database;
use crate::error::{SyncError, SyncResult};
use crate::meta::verify::{self as saved, PassState};
use crate::meta::Meta;
use crate::progress::Progress;
use crate::source::keyset::StoredValue;
use crate::verify::difference::Difference;
use crate::verify::recheck::Recheck;
use crate::verify::sides::{Range, TableSides};
use crate::verify::Summary;
use mysql_async::Value;
use tracing::info;

/// Source rows per chunk.
pub const CHUNK_ROWS: u64 = 10_000;
/// Differences a summary carries (the rest are in the meta schema).
pub const SHOWN: usize = 100;

pub struct FullPass<'a> {
    pub source: &'a Database,
    pub destination: &'a Database,
    pub meta: &'a Meta,
    pub tables: &'a [TableSides],
    pub recheck: Recheck<'a>,
    pub progress: &'a Progress,
    /// What the summary says of the mode (`full`, `both`, ...).
    pub mode: &'a str,
}

impl FullPass<'_> {
    /// Runs `state`'s pass to its end (from where it stopped).
    pub async fn run(&self, mut state: PassState, fresh: bool) -> SyncResult<PassState> {
        let mut src = self.source.conn().await?;
        let mut dst = self.destination.conn().await?;
        let mut shown = saved::differences(self.meta, &mut dst, state.pass, SHOWN as u64).await?;
        if fresh {
            saved::save(self.meta, &mut dst, &mut state, &[], true).await?;
        }
        info!(
            pass = state.pass,
            tables = self.tables.len(),
            done = state.tables_done.len(),
            "verification pass under way"
        );
        for sides in self.tables {
            let label = sides.source_label();
            if state.tables_done.contains(&label) {
                continue;
            }
            let mut lower: Option<Vec<Value>> = match &state.current {
                Some(current) if *current == label => state
                    .after
                    .clone()
                    .map(|after| after.into_iter().map(Value::from).collect()),
                _ => None,
            };
            loop {
                if self.recheck.cancel.is_cancelled() {
                    return Err(SyncError::Stopped);
                }
                self.publish(&state, &shown, "running");
                let upper = sides
                    .next_bound(&mut src, lower.as_deref(), CHUNK_ROWS)
                    .await?;
                let range = Range {
                    lower: lower.clone(),
                    upper: upper.clone(),
                };
                let outcome = self
                    .recheck
                    .chunk(sides, &range, &mut src, &mut dst)
                    .await?;
                state.chunks += 1;
                state.rows_compared += outcome.rows;
                state.differences += outcome.differences.len() as u64;
                state.unsettled += outcome.unsettled;
                match &upper {
                    Some(upper) => {
                        state.current = Some(label.clone());
                        state.after = Some(upper.iter().map(StoredValue::from).collect());
                    }
                    None => {
                        state.tables_done.insert(label.clone());
                        state.current = None;
                        state.after = None;
                    }
                }
                saved::save(self.meta, &mut dst, &mut state, &outcome.differences, false).await?;
                for difference in &outcome.differences {
                    difference.log("a pass");
                }
                let room = SHOWN.saturating_sub(shown.len());
                shown.extend(outcome.differences.into_iter().take(room));
                match upper {
                    Some(upper) => lower = Some(upper),
                    None => break,
                }
            }
        }
        state.finished = true;
        state.finished_ms = Some(dts_common::time::now_ms());
        saved::save(self.meta, &mut dst, &mut state, &[], false).await?;
        self.publish(&state, &shown, "done");
        info!(
            pass = state.pass,
            rows = state.rows_compared,
            differences = state.differences,
            unsettled = state.unsettled,
            "verification pass finished"
        );
        Ok(state)
    }

    fn publish(&self, state: &PassState, shown: &[Difference], status: &str) {
        self.progress.set_verify(Summary::of(
            self.mode,
            state,
            self.tables.len() as u64,
            shown,
            status,
        ));
    }
}
