//! Parallel apply with causality, exactly once.
//!
//! Whole source transactions are routed to one of `n` lanes (each an
//! [`Applier`] with its own connection and checkpoint row), so no lane ever
//! commits part of a source transaction. A transaction goes to the lane that
//! already holds any of its unique-key values in the current batch, or by the
//! hash of its first key; a transaction whose keys are held by two lanes is a
//! barrier: every lane commits first. Huge transactions stream through lane 1
//! alone (bounded memory), and DDL is a barrier.
//!
//! All lanes commit together at batch ends, each writing the batch end into
//! its own checkpoint row. A crash between two lanes' commits leaves lanes at
//! one of two positions; the batch is then replayed from the lower one with
//! fresh causality. Routing is a pure function of the transactions in the
//! batch, so each transaction reaches the same lane again, and a lane skips
//! the transactions it had already committed. Checkpoints never move back.

use crate::pipeline::apply::{image_mapping, Applier, Mode};
use crate::pipeline::binlog::{RowChange, RowKind};
use crate::pipeline::error::SyncResult;
use crate::pipeline::position::BinlogPosition;
use std::collections::{BTreeSet, HashMap};

/// Rows a batch may hold before all lanes commit.
const BATCH_ROWS: usize = 20_000;
/// Rows after which a transaction stops being buffered and streams alone.
const BIG_TRANSACTION_ROWS: usize = 10_000;

pub struct RowsWork {
    pub db: String,
    pub table: String,
    pub kind: RowKind,
    pub columns: usize,
    pub changes: Vec<RowChange>,
    pub position: BinlogPosition,
}

struct Lane<'a> {
    applier: Applier<'a>,
    pending: Vec<RowsWork>,
    /// This lane's checkpoint when the run started.
    resumed_at: Option<BinlogPosition>,
}

impl<'a> Lane<'a> {
    fn already_applied(&self, position: &BinlogPosition) -> bool {
        self.resumed_at
            .as_ref()
            .is_some_and(|r| position.at_or_before(r))
    }

    /// Strictly before where this lane had already got to.
    fn behind(&self, position: &BinlogPosition) -> bool {
        self.resumed_at
            .as_ref()
            .is_some_and(|r| position.order_key() < r.order_key())
    }

    async fn apply_and_commit(&mut self, checkpoint: Option<&BinlogPosition>) -> SyncResult<()> {
        for work in std::mem::take(&mut self.pending) {
            self.applier
                .rows(&work.db, &work.table, work.kind, work.columns, work.changes)
                .await?;
        }
        // Never move a checkpoint back (replaying a batch this lane finished).
        let checkpoint = checkpoint.filter(|c| !self.behind(c));
        self.applier.commit(checkpoint).await
    }
}

pub struct Lanes<'a> {
    lanes: Vec<Lane<'a>>,
    /// Unique-key hash -> lane, for the current batch.
    causality: HashMap<u64, usize>,
    /// End of the last transaction routed in this batch.
    batch_end: Option<BinlogPosition>,
    batch_rows: usize,
    /// The transaction being read: its rows and key hashes.
    transaction: Vec<RowsWork>,
    transaction_keys: Vec<u64>,
    transaction_rows: usize,
    /// The current transaction is too big to buffer: it streams through lane 1.
    streaming: bool,
    /// Until the furthest lane checkpoint is reached, batches are replayed
    /// exactly as first cut: no commits other than at that point.
    replay_until: Option<BinlogPosition>,
}

impl<'a> Lanes<'a> {
    /// `lanes[i]` is lane `i + 1`, with the checkpoint it had when this run started.
    pub fn new(lanes: Vec<(Applier<'a>, Option<BinlogPosition>)>) -> Self {
        // Lanes commit together, so they differ only after a crash between two
        // lanes' commits: then the batch up to the furthest one is replayed.
        let all_equal = lanes.windows(2).all(|w| w[0].1 == w[1].1);
        let replay_until = if all_equal {
            None
        } else {
            lanes
                .iter()
                .filter_map(|(_, c)| c.as_ref())
                .max_by(|a, b| a.order_key().cmp(&b.order_key()))
                .cloned()
        };
        Self {
            lanes: lanes
                .into_iter()
                .map(|(applier, resumed_at)| Lane {
                    applier,
                    pending: Vec::new(),
                    resumed_at,
                })
                .collect(),
            causality: HashMap::new(),
            batch_end: None,
            batch_rows: 0,
            transaction: Vec::new(),
            transaction_keys: Vec::new(),
            transaction_rows: 0,
            streaming: false,
            replay_until,
        }
    }

    pub fn set_mode(&mut self, mode: Mode) {
        for lane in &mut self.lanes {
            lane.applier.mode = mode;
        }
    }

    pub fn mode(&self) -> Mode {
        self.lanes[0].applier.mode
    }

    pub fn rows_applied(&self) -> u64 {
        self.lanes.iter().map(|l| l.applier.rows_applied).sum()
    }

    fn replaying(&self) -> bool {
        self.replay_until.is_some()
    }

    pub fn begin_transaction(&mut self) {
        self.transaction.clear();
        self.transaction_keys.clear();
        self.transaction_rows = 0;
        self.streaming = false;
    }

    pub async fn rows(&mut self, work: RowsWork) -> SyncResult<()> {
        if self.streaming {
            return self.stream(work).await;
        }
        let keys = self.key_hashes(&work).await?;
        self.transaction_keys.extend(keys);
        self.transaction_rows += work.changes.len();
        self.transaction.push(work);
        if self.transaction_rows > BIG_TRANSACTION_ROWS {
            // Barrier, then everything of this transaction goes through lane 1.
            self.commit_batch().await?;
            self.streaming = true;
            for work in std::mem::take(&mut self.transaction) {
                self.stream(work).await?;
            }
        }
        Ok(())
    }

    async fn stream(&mut self, work: RowsWork) -> SyncResult<()> {
        let lane = &mut self.lanes[0];
        if lane.already_applied(&work.position) {
            return Ok(());
        }
        lane.applier
            .rows(&work.db, &work.table, work.kind, work.columns, work.changes)
            .await
    }

    /// The transaction ended at `position`: route it, and commit the batch
    /// when it is full. Returns the position committed, if any.
    pub async fn end_transaction(
        &mut self,
        position: BinlogPosition,
    ) -> SyncResult<Option<BinlogPosition>> {
        if self.streaming {
            self.streaming = false;
            self.batch_end = Some(position);
            return self.commit_batch().await;
        }
        let works = std::mem::take(&mut self.transaction);
        let keys = std::mem::take(&mut self.transaction_keys);
        let mut committed = None;
        if !works.is_empty() {
            let held: BTreeSet<usize> = keys
                .iter()
                .filter_map(|k| self.causality.get(k).copied())
                .collect();
            if held.len() > 1 {
                committed = self.commit_batch().await?;
            }
            let lane = match held.iter().next() {
                Some(&lane) if held.len() == 1 => lane,
                _ => keys
                    .first()
                    .map_or(0, |k| (*k % self.lanes.len() as u64) as usize),
            };
            for key in keys {
                self.causality.insert(key, lane);
            }
            let target = &mut self.lanes[lane];
            for work in works {
                if !target.already_applied(&work.position) {
                    target.pending.push(work);
                }
            }
        }
        self.batch_rows += self.transaction_rows;
        self.transaction_rows = 0;
        self.batch_end = Some(position.clone());
        if let Some(until) = &self.replay_until {
            if until.at_or_before(&position) {
                self.replay_until = None;
                return self.commit_batch().await;
            }
            return Ok(committed);
        }
        if self.batch_rows >= BATCH_ROWS {
            return self.commit_batch().await;
        }
        Ok(committed)
    }

    /// Nothing more to read right now: make the batch durable (not while
    /// replaying a batch, whose cut must stay as it was).
    pub async fn idle(&mut self) -> SyncResult<Option<BinlogPosition>> {
        if self.replaying() {
            return Ok(None);
        }
        self.commit_batch().await
    }

    /// Every lane applies what it holds and commits with the batch end.
    pub async fn commit_batch(&mut self) -> SyncResult<Option<BinlogPosition>> {
        let Some(end) = self.batch_end.take() else {
            return Ok(None);
        };
        let commits = self
            .lanes
            .iter_mut()
            .map(|lane| lane.apply_and_commit(Some(&end)));
        futures::future::try_join_all(commits).await?;
        self.causality.clear();
        self.batch_rows = 0;
        Ok(Some(end))
    }

    /// Before a statement (DDL) at `position`: a barrier. Returns lane 1's
    /// applier to run it on, unless lane 1 is already past it.
    pub async fn barrier_for(
        &mut self,
        position: &BinlogPosition,
    ) -> SyncResult<Option<&mut Applier<'a>>> {
        self.commit_batch().await?;
        let lane = &mut self.lanes[0];
        Ok((!lane.already_applied(position)).then_some(&mut lane.applier))
    }

    /// After a statement at `position` ran (DDL) or was passed over: every lane
    /// checkpoints past it.
    pub async fn after_statement(
        &mut self,
        position: BinlogPosition,
        schema_changed: bool,
    ) -> SyncResult<()> {
        if schema_changed {
            for lane in &mut self.lanes {
                lane.applier.forget_tables();
            }
        }
        if self
            .replay_until
            .as_ref()
            .is_some_and(|u| u.at_or_before(&position))
        {
            self.replay_until = None;
        }
        self.batch_end = Some(position);
        self.commit_batch().await.map(|_| ())
    }

    /// Key hashes (every unique key, before and after images) of a rows event.
    async fn key_hashes(&mut self, work: &RowsWork) -> SyncResult<Vec<u64>> {
        let table = self.lanes[0].applier.table(&work.db, &work.table).await?;
        let mapping = image_mapping(&table, work.columns)?;
        // Image position of each table column, if present in the image.
        let mut image_of = vec![None; table.columns.len()];
        for (image_index, &column) in mapping.iter().enumerate() {
            image_of[column] = Some(image_index);
        }
        let mut keys = Vec::new();
        for change in &work.changes {
            for image in [&change.before, &change.after].into_iter().flatten() {
                for (index_no, key) in table.unique_keys.iter().enumerate() {
                    let mut hash = Fnv::new();
                    hash.write(work.db.as_bytes());
                    hash.write(&[0]);
                    hash.write(work.table.as_bytes());
                    hash.write(&[0, index_no as u8]);
                    let mut complete = true;
                    for &column in key {
                        match image_of[column].and_then(|i| image.get(i)) {
                            Some(mysql_async::binlog::value::BinlogValue::Value(
                                mysql_async::Value::NULL,
                            ))
                            | None => {
                                complete = false;
                            }
                            Some(value) => hash.write(format!("{value:?}").as_bytes()),
                        }
                    }
                    // NULL never conflicts in a unique index.
                    if complete {
                        keys.push(hash.finish());
                    }
                }
            }
        }
        Ok(keys)
    }
}

/// FNV-1a: a hash that is the same in every process and version, which the
/// replay after a restart relies on.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv;

    #[test]
    fn fnv_is_the_published_function() {
        let mut h = Fnv::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
