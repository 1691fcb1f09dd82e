//! Parallel apply with causality, exactly once.
//!
//! Whole source transactions are routed to one of `n` lanes (each an
//! [`Applier`] with its own connection and checkpoint row), so no lane ever
//! commits part of a source transaction. A transaction goes to the lane that
//! already holds any of its unique-key values in the current batch, or by the
//! hash of its first key; a transaction whose keys are held by two lanes
//! merges those lanes' queues (nothing is applied before the batch commits).
//! Huge transactions stream through lane 1 alone (bounded memory), and DDL is
//! a barrier.
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
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use tracing::debug;

/// The routing this version cuts batches with. A replay after a crash must
/// route exactly as the run that cut the batch, so every lane checkpoint
/// records the routing it was cut with:
/// - 0 (checkpoints without the field): hash of each key value's debug text,
///   which mysql_common cuts to the first 8 bytes of a string, so that keys
///   sharing a prefix all collided;
/// - 1: hash of the whole value, with strings folded (ASCII case, trailing
///   spaces) so that keys a case-insensitive collation deems equal collide;
///   and a transaction depending on several lanes merges them instead of
///   committing the batch (routing 0 committed there: with hot rows, that
///   cut batches to a few dozen transactions).
pub const ROUTING: u8 = 1;

/// A lane's checkpoint row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneCheckpoint {
    #[serde(flatten)]
    pub position: BinlogPosition,
    #[serde(default)]
    pub routing: u8,
}

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
            // Replaying: this lane committed the work before (it is filtered
            // here, not when queued, because lanes may merge until the batch
            // commits and only the lane that ends up with the work decides).
            if self.already_applied(&work.position) {
                continue;
            }
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
    /// How transactions are routed: [`ROUTING`], or while replaying, the
    /// routing the replayed batch was cut with.
    routing: u8,
}

impl<'a> Lanes<'a> {
    /// `lanes[i]` is lane `i + 1`, with the checkpoint it had when this run started.
    pub fn new(lanes: Vec<(Applier<'a>, Option<LaneCheckpoint>)>) -> Self {
        // Lanes commit together, so they differ only after a crash between two
        // lanes' commits: then the batch up to the furthest one is replayed,
        // routed as the run that cut it (which wrote the furthest checkpoints).
        let positions_equal = lanes
            .windows(2)
            .all(|w| w[0].1.as_ref().map(|c| &c.position) == w[1].1.as_ref().map(|c| &c.position));
        let furthest = lanes
            .iter()
            .filter_map(|(_, c)| c.as_ref())
            .max_by(|a, b| a.position.order_key().cmp(&b.position.order_key()));
        let (replay_until, routing) = match furthest {
            Some(furthest) if !positions_equal => {
                (Some(furthest.position.clone()), furthest.routing)
            }
            _ => (None, ROUTING),
        };
        Self {
            lanes: lanes
                .into_iter()
                .map(|(mut applier, resumed_at)| {
                    applier.routing = routing;
                    Lane {
                        applier,
                        pending: Vec::new(),
                        resumed_at: resumed_at.map(|c| c.position),
                    }
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
            routing,
        }
    }

    /// The replay is over: from the next batch on, route as this version does.
    fn end_replay(&mut self) {
        self.replay_until = None;
        self.routing = ROUTING;
        for lane in &mut self.lanes {
            lane.applier.routing = ROUTING;
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

    /// The lane a transaction touching no queued key goes to.
    fn hashed_lane(&self, keys: &[u64]) -> usize {
        keys.first()
            .map_or(0, |k| (*k % self.lanes.len() as u64) as usize)
    }

    /// Moves lane `from`'s queue into lane `into`, keeping binlog order, and
    /// re-homes its keys.
    fn merge_lanes(&mut self, from: usize, into: usize) {
        let moved = std::mem::take(&mut self.lanes[from].pending);
        let kept = std::mem::take(&mut self.lanes[into].pending);
        self.lanes[into].pending = merge_in_binlog_order(kept, moved);
        for lane in self.causality.values_mut() {
            if *lane == from {
                *lane = into;
            }
        }
    }

    /// Rows routed into the batch and not yet committed.
    pub fn pending_rows(&self) -> usize {
        self.batch_rows + self.transaction_rows
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
            let mut held = held.into_iter();
            let lane = match (held.next(), held.next()) {
                (Some(only), None) => only,
                (Some(first), Some(second)) if self.routing >= 1 => {
                    // Depends on work queued in several lanes: those lanes
                    // become one (nothing is applied before the batch
                    // commits, so their queues can still be merged in order).
                    for other in [second].into_iter().chain(held) {
                        self.merge_lanes(other, first);
                    }
                    first
                }
                (Some(_), Some(_)) => {
                    // Routing 0 committed the batch here instead.
                    committed = self.commit_batch().await?;
                    self.hashed_lane(&keys)
                }
                (None, _) => self.hashed_lane(&keys),
            };
            for key in keys {
                self.causality.insert(key, lane);
            }
            self.lanes[lane].pending.extend(works);
        }
        self.batch_rows += self.transaction_rows;
        self.transaction_rows = 0;
        self.batch_end = Some(position.clone());
        if let Some(until) = &self.replay_until {
            if until.at_or_before(&position) {
                let committed = self.commit_batch().await;
                self.end_replay();
                return committed;
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
        let started = std::time::Instant::now();
        let rows = self.batch_rows;
        let commits = self
            .lanes
            .iter_mut()
            .map(|lane| lane.apply_and_commit(Some(&end)));
        futures::future::try_join_all(commits).await?;
        self.causality.clear();
        self.batch_rows = 0;
        debug!(
            rows,
            took_ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
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
        let replay_ends = self
            .replay_until
            .as_ref()
            .is_some_and(|u| u.at_or_before(&position));
        self.batch_end = Some(position);
        self.commit_batch().await?;
        if replay_ends {
            self.end_replay();
        }
        Ok(())
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
        let mut scratch = Vec::new();
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
                            Some(value) if self.routing == 0 => {
                                hash.write(format!("{value:?}").as_bytes())
                            }
                            Some(value) => {
                                scratch.clear();
                                routing_bytes(value, &mut scratch);
                                hash.write(&scratch);
                            }
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

/// Merges two queues, each in binlog order, into one in binlog order.
fn merge_in_binlog_order(a: Vec<RowsWork>, b: Vec<RowsWork>) -> Vec<RowsWork> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.position.order_key() <= y.position.order_key(),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return merged,
        };
        merged.extend(if take_a { a.next() } else { b.next() });
    }
}

/// What routing 1 hashes of a key value: the whole value, strings folded so
/// that values a case- and trailing-space-insensitive collation deems equal
/// collide (over-constraining only costs parallelism; under-constraining would
/// let two lanes reorder changes of one row). Non-ASCII case folding is not
/// attempted.
fn routing_bytes(value: &mysql_async::binlog::value::BinlogValue<'_>, out: &mut Vec<u8>) {
    use mysql_async::binlog::value::BinlogValue;
    match value {
        BinlogValue::Value(mysql_async::Value::Bytes(bytes)) => {
            let end = bytes
                .iter()
                .rposition(|&b| b != b' ')
                .map_or(0, |last| last + 1);
            out.push(1);
            out.extend(bytes[..end].iter().map(u8::to_ascii_lowercase));
            out.push(0xff);
        }
        BinlogValue::Value(other) => crate::pipeline::compact::encode_value(other, out),
        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
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
    use super::{routing_bytes, Fnv, LaneCheckpoint};
    use mysql_async::binlog::value::BinlogValue;
    use mysql_async::Value;

    fn routed(value: Value) -> Vec<u8> {
        let mut out = Vec::new();
        routing_bytes(&BinlogValue::Value(value), &mut out);
        out
    }

    #[test]
    fn merged_queues_keep_binlog_order() {
        let work = |pos: u64| super::RowsWork {
            db: "d".into(),
            table: "t".into(),
            kind: crate::pipeline::binlog::RowKind::Insert,
            columns: 1,
            changes: Vec::new(),
            position: crate::pipeline::position::BinlogPosition {
                file: "b.000001".into(),
                pos,
                gtid: None,
            },
        };
        let merged = super::merge_in_binlog_order(
            vec![work(10), work(40), work(50)],
            vec![work(20), work(30), work(60)],
        );
        let order: Vec<u64> = merged.iter().map(|w| w.position.pos).collect();
        assert_eq!(order, [10, 20, 30, 40, 50, 60]);
    }

    #[test]
    fn routing_tells_long_strings_apart_and_folds_case_and_padding() {
        let a = routed(Value::Bytes(b"customer-000001".to_vec()));
        let b = routed(Value::Bytes(b"customer-000002".to_vec()));
        assert_ne!(a, b, "keys sharing an 8-byte prefix must not collide");
        assert_eq!(a, routed(Value::Bytes(b"Customer-000001  ".to_vec())));
        assert_ne!(routed(Value::Int(1)), routed(Value::Int(2)));
    }

    #[test]
    fn checkpoints_without_a_routing_field_are_routing_zero() -> Result<(), serde_json::Error> {
        let old: LaneCheckpoint = serde_json::from_str(r#"{"file":"b.000001","pos":4}"#)?;
        assert_eq!(old.routing, 0);
        let new = LaneCheckpoint {
            position: old.position.clone(),
            routing: super::ROUTING,
        };
        let json = serde_json::to_string(&new)?;
        assert_eq!(serde_json::from_str::<LaneCheckpoint>(&json)?, new);
        // Older versions read the same row as a plain position.
        let plain: crate::pipeline::position::BinlogPosition = serde_json::from_str(&json)?;
        assert_eq!(plain, old.position);
        Ok(())
    }

    #[test]
    fn fnv_is_the_published_function() {
        let mut h = Fnv::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
