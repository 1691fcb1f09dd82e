//! Incremental verification: the rows each applied transaction changed,
//! compared on both sides once [`DELAY`] has passed since their commit, the
//! way a pass compares a chunk's differing keys (see `recheck::keys`): a
//! row is reported only if the destination is still not what the source
//! had once the task is past it. It follows what the task writes, so it
//! catches an apply defect within seconds; what happens to a row behind
//! the task's back, it sees only when the task changes that row again (a
//! full pass sees everything).

use crate::endpoint::Database;
use crate::error::{SyncError, SyncResult};
use crate::meta::verify::{self as saved, IncrementalState};
use crate::meta::Meta;
use crate::progress::Progress;
use crate::verify::changed::ChangedKeys;
use crate::verify::difference::Difference;
use crate::verify::recheck::Recheck;
use crate::verify::sides::TableSides;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How long after its commit a changed row is compared: by then the task
/// has normally applied it, so the comparison seldom needs to wait.
pub const DELAY: Duration = Duration::from_secs(2);
/// How often the check looks for rows old enough.
const TICK: Duration = Duration::from_millis(500);
/// Keys compared per statement.
const KEYS_PER_READ: usize = 500;
/// Differences a summary carries.
const SHOWN: usize = 100;

/// A table's keys in a batch: seen (by key bytes), in order.
type KeysOfTable = (HashSet<Vec<u8>>, Vec<Vec<mysql_async::Value>>);

/// What `task verify` reports of the incremental check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncrementalSummary {
    pub checked: u64,
    pub differences: u64,
    pub unsettled: u64,
    pub skipped: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<Difference>,
}

pub struct IncrementalCheck<'a> {
    pub source: &'a Database,
    pub destination: &'a Database,
    pub meta: &'a Meta,
    /// The task's tables, by source `db.table`.
    pub tables: BTreeMap<String, &'a TableSides>,
    pub changed: Arc<ChangedKeys>,
    pub recheck: Recheck<'a>,
    pub progress: &'a Progress,
}

impl IncrementalCheck<'_> {
    /// Compares changed rows as they come of age, until the task stops.
    pub async fn run(&self) -> SyncResult<()> {
        let mut dst = self.destination.conn().await?;
        let mut state = saved::load_incremental(self.meta, &mut dst).await?;
        let mut shown =
            saved::differences(self.meta, &mut dst, saved::INCREMENTAL_PASS, SHOWN as u64).await?;
        self.publish(&state, &shown);
        let mut src = self.source.conn().await?;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = self.recheck.cancel.cancelled() => return Err(SyncError::Stopped),
            }
            let rows = self.changed.take_older_than(DELAY);
            let skipped = self.changed.take_dropped();
            if rows.is_empty() && skipped == 0 {
                continue;
            }
            state.skipped += skipped;
            // A task behind its source (a backlog, a pause) is compared once
            // it is caught up: before, a row it has yet to change again
            // would look behind.
            self.recheck.wait_caught_up(&mut src).await?;
            // One key once per batch, grouped by table.
            let mut by_table: BTreeMap<String, KeysOfTable> = BTreeMap::new();
            for (table, key) in rows {
                let label = format!("{}.{}", table.db, table.name);
                let Some(sides) = self.tables.get(&label) else {
                    continue;
                };
                let (seen, keys) = by_table.entry(label).or_default();
                if seen.insert(sides.key_bytes(&key)) {
                    keys.push(key);
                }
            }
            let mut found = Vec::new();
            for (label, (_, keys)) in by_table {
                let Some(sides) = self.tables.get(&label) else {
                    continue;
                };
                for part in keys.chunks(KEYS_PER_READ) {
                    let outcome = self
                        .recheck
                        .keys(sides, part.to_vec(), &mut src, &mut dst)
                        .await?;
                    state.checked += part.len() as u64;
                    state.unsettled += outcome.unsettled;
                    state.differences += outcome.differences.len() as u64;
                    found.extend(outcome.differences);
                }
            }
            for difference in &found {
                difference.log("the incremental check");
            }
            saved::save_incremental(self.meta, &mut dst, &mut state, &found).await?;
            let room = SHOWN.saturating_sub(shown.len());
            shown.extend(found.into_iter().take(room));
            self.publish(&state, &shown);
        }
    }

    fn publish(&self, state: &IncrementalState, shown: &[Difference]) {
        self.progress.set_verify_incremental(IncrementalSummary {
            checked: state.checked,
            differences: state.differences,
            unsettled: state.unsettled,
            skipped: state.skipped,
            found: shown.to_vec(),
        });
    }
}
