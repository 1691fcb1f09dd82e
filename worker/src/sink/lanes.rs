//! Parallel apply with causality, exactly once.
//!
//! Whole source transactions are routed to one of `n` lanes (each an
//! [`Applier`] with its own connection and checkpoint row), so no lane ever
//! commits part of a source transaction (with `apply_consistency = "row"`,
//! the row changes of tables whose changes commute across keys are routed
//! one by one instead: see [`ROW_ROUTING`]). Transactions of a batch that
//! share a unique-key value form one group, applied in binlog order by one
//! lane; the groups are dealt to the lanes by size when the batch is handed
//! over (nothing is applied before), so a few shared rows tie together only
//! the transactions that touch them. Huge transactions stream through lane 1
//! alone (bounded memory), and DDL is a barrier.
//!
//! All lanes commit together at batch ends, each writing the batch end into
//! its own checkpoint row. A crash between two lanes' commits leaves lanes at
//! one of two positions; the batch is then replayed from the lower one with
//! fresh causality. Routing is a pure function of the transactions in the
//! batch, so each transaction reaches the same lane again, and a lane skips
//! the transactions it had already committed. Checkpoints never move back.
//!
//! Each lane runs on its own task. A full batch is handed to the lanes as
//! soon as it is routed, and the next one is routed while they apply it. A
//! lane that finishes the batch before early folds the new one meanwhile
//! (its CPU work overlaps the other lanes' writes), but writes none of it
//! until every lane has committed the one before (see [`Gate`]), so no lane
//! runs ahead of a change another lane has not committed.

use crate::error::{SyncError, SyncResult};
use crate::meta::schema_history::SourceDefinitions;
use crate::sink::apply::{image_mapping, Applier, Mode};
use crate::source::binlog::{RowChange, RowKind};
use crate::source::catalog::TableName;
use crate::source::position::BinlogPosition;
use crate::transform::ddl::DdlWork;
use dts_common::route::TableRoute;
use foldhash::HashMap as FastMap;
use mysql_async::Conn;
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, Instrument};

/// The routing this version cuts batches with when each source transaction
/// must commit whole (`apply_consistency = "transaction"`). A replay after a
/// crash must route exactly as the run that cut the batch, so every lane
/// checkpoint records the routing it was cut with:
/// - 0 (checkpoints without the field): hash of each key value's debug text,
///   which mysql_common cuts to the first 8 bytes of a string, so that keys
///   sharing a prefix all collided;
/// - 1: hash of the whole value, with strings folded (ASCII case, trailing
///   spaces) so that keys a case-insensitive collation deems equal collide;
///   and a transaction depending on several lanes merges them instead of
///   committing the batch (routing 0 committed there: with hot rows, that
///   cut batches to a few dozen transactions).
/// - 2 ([`ROW_ROUTING`]): as 1, except that a transaction touching only
///   tables whose changes commute across keys (see `compact`) is split, each
///   row change going to the lane of its own key.
/// - 3: keys hashed as 1, but a transaction sharing a key with transactions
///   already in the batch joins their group instead of merging whole lanes,
///   and the groups are dealt to lanes when the batch is handed over (see
///   [`Groups::deal`]). With uniform sysbench keys, routing 1 merged lanes
///   a few hundred times a batch, so most batches ran in one lane.
pub const ROUTING: u8 = GROUP_ROUTING;
/// Routing 3, by groups of transactions sharing keys.
const GROUP_ROUTING: u8 = 3;
/// The routing of `apply_consistency = "row"`. With random keys, one
/// transaction in a few hundred shares a row with another in the batch and
/// so merges two lanes: at 20,000 rows a batch all of sysbench's batches ran
/// in one lane. Per-row routing keeps them apart.
pub const ROW_ROUTING: u8 = 2;

/// The lanes `causality` says hold any of `keys`: the lowest, and the others
/// in ascending order; `None` when no lane holds any. Called for every row
/// change routed: it allocates only when keys span several lanes.
fn lanes_holding(causality: &FastMap<u64, usize>, keys: &[u64]) -> Option<(usize, Vec<usize>)> {
    let mut lowest: Option<usize> = None;
    let mut others: Vec<usize> = Vec::new();
    for lane in keys.iter().filter_map(|k| causality.get(k).copied()) {
        match lowest {
            None => lowest = Some(lane),
            Some(low) if low == lane || others.contains(&lane) => {}
            Some(low) if lane < low => {
                others.push(low);
                lowest = Some(lane);
            }
            Some(_) => others.push(lane),
        }
    }
    others.sort_unstable();
    lowest.map(|lowest| (lowest, others))
}

/// A lane's checkpoint row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneCheckpoint {
    #[serde(flatten)]
    pub position: BinlogPosition,
    #[serde(default)]
    pub routing: u8,
}

/// Rows a batch may hold before all lanes commit. Hot rows are written once
/// per batch and net rows go out in key order, so a wider batch costs the
/// destination less per source row: at 40,000 rather than 20,000 the pinned
/// sysbench catch-up cost the destination 20% less CPU in transaction mode
/// and 9% less in row mode (medians of four interleaved rounds).
const BATCH_ROWS: usize = 40_000;
/// Rows after which a batch is handed over at once when every lane is idle,
/// full or not: idle lanes gain nothing by waiting, and while they apply it
/// the next batch grows, so batches grow to what the destination takes.
const EAGER_ROWS: usize = 500;
/// Rows after which a transaction stops being buffered and streams alone.
const BIG_TRANSACTION_ROWS: usize = 10_000;
/// Decoded bytes a batch may hold (see `RowChange::size`), beside
/// [`BATCH_ROWS`]: the reader's read-ahead budget is returned once its rows
/// are routed, so without this a backlog of wide rows in small transactions
/// was held whole until 40,000 rows were routed. A lane folds one batch
/// while the one before is written, so the worker holds about three of them.
/// 40,000 sysbench rows estimate about 16 MiB, so the pinned catch-up is cut
/// by rows as before.
const BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Decoded bytes after which a transaction streams alone, beside
/// [`BIG_TRANSACTION_ROWS`]: a few thousand rows of blobs are as big as
/// millions of narrow ones.
const BIG_TRANSACTION_BYTES: usize = 16 * 1024 * 1024;
/// Commands queued to a lane: a batch, or rows events of a streaming
/// transaction (so a huge one waits for lane 1 rather than piling up).
const LANE_COMMANDS: usize = 8;

/// Row changes a lane folds between two yields to the runtime.
const ROWS_BETWEEN_YIELDS: usize = 256;

/// Yields to the runtime every [`ROWS_BETWEEN_YIELDS`] row changes. Folding
/// never waits on I/O, so without yielding, a lane folding its share would
/// hold its runtime thread for many milliseconds while other lanes' replies
/// wait to be read and the destination idles (on a worker with one core,
/// every task shares one thread).
#[derive(Default)]
struct Pace {
    rows: usize,
}

impl Pace {
    async fn after(&mut self, rows: usize) {
        self.rows += rows;
        if self.rows >= ROWS_BETWEEN_YIELDS {
            self.rows = 0;
            tokio::task::yield_now().await;
        }
    }
}

/// Opens once every lane has committed a batch. The next batch is handed
/// over before that: a lane folds it while the gate is shut (folding writes
/// nothing) and writes only once it opens.
pub struct Gate {
    lanes: usize,
    /// Lanes that committed the batch, and whether one failed it.
    state: watch::Sender<(usize, bool)>,
}

impl Gate {
    fn new(lanes: usize) -> Arc<Self> {
        Arc::new(Self {
            lanes,
            state: watch::Sender::new((0, false)),
        })
    }

    /// One lane committed the batch, or failed it.
    fn passed(&self, committed: bool) {
        self.state.send_modify(|(count, failed)| {
            if committed {
                *count += 1;
            } else {
                *failed = true;
            }
        });
    }

    /// Every lane has committed the batch (or one failed it).
    fn is_open(&self) -> bool {
        self.opens(&self.state.borrow())
    }

    /// Whether a gate in this state is open: every lane committed the
    /// batch, or one failed it.
    fn opens(&self, &(count, failed): &(usize, bool)) -> bool {
        failed || count >= self.lanes
    }

    /// Waits until every lane committed the batch. When one failed it, the
    /// batch after it must not be written: the run ends with that failure,
    /// and both batches are replayed after it.
    async fn opened(&self) -> SyncResult<()> {
        let mut state = self.state.subscribe();
        let (_, failed) = *state
            .wait_for(|state| self.opens(state))
            .await
            .map_err(|_| SyncError::Internal("an apply lane's gate was dropped".into()))?;
        if failed {
            return Err(SyncError::Internal(
                "another apply lane failed the batch before this one".into(),
            ));
        }
        Ok(())
    }
}

fn lane_ended(lane: usize) -> SyncError {
    SyncError::Internal(format!("apply lane {lane} ended unexpectedly"))
}

/// Row changes of one rows event, for the destination table the route
/// sends them to.
pub struct RowsWork {
    pub kind: RowKind,
    pub columns: usize,
    pub changes: Vec<RowChange>,
    /// Roughly the memory `changes` hold (see `RowChange::size`).
    pub bytes: usize,
    pub position: BinlogPosition,
    /// The source table whose rows these are (its definition decodes them).
    pub source: Arc<TableName>,
    /// Where the route sends them, and what it does with them (operations,
    /// columns).
    pub route: Arc<TableRoute>,
}

impl RowsWork {
    /// The destination database.
    pub fn db(&self) -> &str {
        &self.route.db
    }

    /// The destination table.
    pub fn table(&self) -> &str {
        &self.route.table
    }

    /// The destination keeps what a filtered operation would have changed,
    /// so later changes cannot be checked against it strictly.
    pub fn lenient(&self) -> bool {
        self.route.dml != dts_common::route::DmlSet::ALL
    }
}

/// Whether a lane that had committed up to `resumed_at` already applied the
/// change at `position`.
fn applied_by(resumed_at: Option<&BinlogPosition>, position: &BinlogPosition) -> bool {
    resumed_at.is_some_and(|r| position.at_or_before(r))
}

/// A lane's applier with where its checkpoint stood when the run started:
/// the state of one lane task.
struct Lane {
    applier: Applier,
    /// This lane's checkpoint when the run started.
    resumed_at: Option<BinlogPosition>,
}

impl Lane {
    fn already_applied(&self, position: &BinlogPosition) -> bool {
        applied_by(self.resumed_at.as_ref(), position)
    }

    /// Strictly before where this lane had already got to.
    fn behind(&self, position: &BinlogPosition) -> bool {
        self.resumed_at
            .as_ref()
            .is_some_and(|r| position.order_key() < r.order_key())
    }

    /// Applies this lane's share of a batch and commits it; `after`: the
    /// gate of the batch before, which other lanes may still be committing.
    async fn apply_and_commit(
        &mut self,
        works: Vec<RowsWork>,
        after: Option<&Gate>,
        checkpoint: &BinlogPosition,
    ) -> SyncResult<()> {
        // Replaying: this lane committed the work before (it is filtered
        // here, not when queued, because lanes may merge until the batch
        // commits and only the lane that ends up with the work decides).
        let resumed_at = self.resumed_at.clone();
        let mut works = works
            .into_iter()
            .filter(move |work| !applied_by(resumed_at.as_ref(), &work.position))
            .peekable();
        let mut pace = Pace::default();
        if let Some(gate) = after {
            // Fold ahead while the gate is shut, up to the first work that
            // would write.
            while let Some(work) = works.peek() {
                if !self.applier.folds_without_writing(work).await? {
                    break;
                }
                if let Some(work) = works.next() {
                    pace.after(work.changes.len()).await;
                    self.applier.rows(work).await?;
                }
            }
            gate.opened().await?;
        }
        for work in works {
            pace.after(work.changes.len()).await;
            self.applier.rows(work).await?;
        }
        // Never move a checkpoint back (replaying a batch this lane finished).
        let checkpoint = Some(checkpoint).filter(|c| !self.behind(c));
        self.applier.commit(checkpoint).await
    }
}

/// What a lane task is asked to do, in order.
enum Command {
    /// Apply a batch's share and commit it with the batch end.
    Batch {
        works: Vec<RowsWork>,
        checkpoint: BinlogPosition,
        mode: Mode,
        routing: u8,
        /// Where the batch's changes were first written (loop marker).
        origin: u32,
        /// The batch before's gate, while it may still be committing.
        after: Option<Arc<Gate>>,
        /// This batch's gate, passed once this lane committed it.
        gate: Arc<Gate>,
        done: oneshot::Sender<SyncResult<()>>,
    },
    /// Rows of a transaction too big to buffer (lane 1), left uncommitted
    /// until the batch that ends it. A failure is answered by that batch.
    Stream { work: RowsWork, origin: u32 },
    /// DDL at `position` (lane 1); answers whether it ran.
    Ddl {
        work: DdlWork,
        position: BinlogPosition,
        tolerate_applied: bool,
        done: oneshot::Sender<SyncResult<bool>>,
    },
    /// Table definitions changed (DDL ran).
    ForgetTables,
}

/// Runs one of a lane's tasks: tasks of their own, so that lanes decode,
/// fold and build their statements on every core, and while the next batch
/// is being routed.
async fn run_lane(mut lane: Lane, mut commands: mpsc::Receiver<Command>, applied: Arc<AtomicU64>) {
    let mut failed: Option<SyncError> = None;
    while let Some(command) = commands.recv().await {
        match command {
            Command::Batch {
                works,
                checkpoint,
                mode,
                routing,
                origin,
                after,
                gate,
                done,
            } => {
                let result = match failed.take() {
                    Some(error) => Err(error),
                    None => {
                        lane.applier.mode = mode;
                        lane.applier.routing = routing;
                        lane.applier.origin = origin;
                        lane.apply_and_commit(works, after.as_deref(), &checkpoint)
                            .await
                    }
                };
                gate.passed(result.is_ok());
                applied.store(lane.applier.rows_applied, Ordering::Relaxed);
                let _ = done.send(result);
            }
            Command::Stream { work, origin } => {
                if failed.is_some() || lane.already_applied(&work.position) {
                    continue;
                }
                lane.applier.origin = origin;
                if let Err(error) = lane.applier.rows(work).await {
                    failed = Some(error);
                }
            }
            Command::Ddl {
                work,
                position,
                tolerate_applied,
                done,
            } => {
                let result = match failed.take() {
                    Some(error) => Err(error),
                    None if lane.already_applied(&position) => Ok(false),
                    None => lane
                        .applier
                        .execute_ddl(&work, &position, tolerate_applied)
                        .await
                        .map(|()| true),
                };
                let _ = done.send(result);
            }
            Command::ForgetTables => lane.applier.forget_tables(),
        }
    }
}

/// One lane: work routed to it, and the tasks that apply its batches in
/// turn (see [`TASKS_PER_LANE`]).
struct LaneHandle {
    /// Work routed here in the current batch, in binlog order.
    pending: Vec<RowsWork>,
    tasks: Vec<LaneTask>,
}

/// The lanes' side of a lane task.
struct LaneTask {
    commands: mpsc::Sender<Command>,
    rows_applied: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// Lane tasks per lane, each with its own applier and connection, taking
/// the lane's batches in turn: one folds batch N+1 while the other writes
/// batch N. With one task per lane a lane folded its next share only after
/// committing its last one, while the destination idled; under transaction
/// consistency, where hot rows put nearly a whole batch in one lane, that
/// left the worker and the destination each idle half the time. Writes are
/// ordered as before: batch N+1 is written only once every lane committed
/// batch N (see [`Gate`]), and at most two batches are in the lanes.
pub const TASKS_PER_LANE: usize = 2;

/// A batch handed to the lanes and not yet known to be committed.
struct InFlight {
    end: BinlogPosition,
    done: Vec<Answer>,
    gate: Arc<Gate>,
}

/// A lane's answer for the batch in flight: still awaited, or received
/// (kept until the batch is settled, so that watching for it with
/// [`Lanes::landed`] can be cancelled without losing it).
enum Answer {
    Awaited(oneshot::Receiver<SyncResult<()>>),
    Received(SyncResult<()>),
}

impl Answer {
    /// Waits for the lane's answer and keeps it. Cancel-safe: the receiver
    /// yields its value only when this completes, and it is kept at once.
    async fn receive(&mut self, lane: usize) {
        if let Answer::Awaited(receiver) = self {
            let answer = receiver.await.unwrap_or_else(|_| Err(lane_ended(lane)));
            *self = Answer::Received(answer);
        }
    }

    /// The lane's answer, waiting for it if it has not come yet.
    async fn into_result(self, lane: usize) -> SyncResult<()> {
        match self {
            Answer::Awaited(receiver) => receiver.await.unwrap_or_else(|_| Err(lane_ended(lane))),
            Answer::Received(result) => result,
        }
    }
}

pub struct Lanes {
    lanes: Vec<LaneHandle>,
    /// Routing reads table definitions on a connection of its own, while
    /// the lanes use theirs.
    catalog_conn: Conn,
    catalog: SourceDefinitions,
    /// Where each key column sits in the images of a source table, by the
    /// address of the reader's name for it (see `transform::select`) and
    /// image width (see [`KeyLayout`]).
    key_layouts: FastMap<(usize, usize), KeyLayout>,
    /// Whose schema history `catalog` reads.
    task_id: String,
    /// The batch handed over last. The one before it is known committed
    /// before this one is handed (so at most two are in the lanes: one
    /// writing, one folded ahead), and no lane writes this one before every
    /// lane has committed that (see [`Gate`]).
    in_flight: Option<InFlight>,
    /// Batches handed to the lanes in this run (which task takes the next:
    /// see [`TASKS_PER_LANE`]).
    batches_handed: u64,
    mode: Mode,
    /// Unique-key hash -> lane, for the current batch (routings 0 to 2).
    causality: FastMap<u64, usize>,
    /// The current batch's transactions by shared keys (routing 3).
    groups: Groups,
    /// End of the last transaction routed in this batch.
    batch_end: Option<BinlogPosition>,
    batch_rows: usize,
    batch_bytes: usize,
    /// The transaction being read: its rows and key hashes.
    transaction: Vec<RowsWork>,
    /// Per work of the transaction, the key hashes of each row change.
    transaction_change_keys: Vec<Vec<Vec<u64>>>,
    /// Every table the transaction touches folds.
    transaction_foldable: bool,
    transaction_rows: usize,
    transaction_bytes: usize,
    /// Between a source transaction's begin and its end.
    in_transaction: bool,
    /// Where the first rows the open source transaction changed went, if
    /// any (held, not copied: it is set for every transaction).
    changed_in_transaction: Option<Arc<TableRoute>>,
    /// The current transaction is too big to buffer: it streams through lane 1.
    streaming: bool,
    /// Until the furthest lane checkpoint is reached, batches are replayed
    /// exactly as first cut: no commits other than at that point.
    replay_until: Option<BinlogPosition>,
    /// How transactions are routed: `configured_routing`, or while
    /// replaying, the routing the replayed batch was cut with.
    routing: u8,
    /// [`ROUTING`] or [`ROW_ROUTING`], from the task's apply consistency.
    configured_routing: u8,
    /// The server this task reads: where changes not relayed were first
    /// written (see `transform::loop_marker`).
    own_origin: u32,
    /// Where the open transaction's changes were first written, when its
    /// loop marker says it relays them.
    transaction_origin: Option<u32>,
    /// Where the current batch's changes were first written: a batch holds
    /// changes of one origin, as the one marker of each destination
    /// transaction says.
    batch_origin: u32,
    /// The end of the last transaction passed over as dts's own looped
    /// write (with data) after the last one routed: where an idle task's
    /// checkpoint may move.
    skipped_to: Option<BinlogPosition>,
    /// The same for one without data (another task's checkpoint): where an
    /// idle task is, though nothing is written for it.
    passed_to: Option<BinlogPosition>,
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // A lane task outliving the run would hold its connection, and
        // perhaps the destination's fence lock, until its batch ended.
        for task in self.lanes.iter().flat_map(|l| &l.tasks) {
            task.task.abort();
        }
    }
}

impl Lanes {
    /// `lanes[i]` is lane `i + 1`: its appliers ([`TASKS_PER_LANE`] of
    /// them, each on its own connection) with the checkpoint it had when this run started; `catalog_conn` is a
    /// destination connection for routing; `configured_routing` is
    /// [`ROUTING`] or [`ROW_ROUTING`]; `task_id`'s schema history gives the
    /// tables' definitions.
    pub fn new(
        lanes: Vec<(Vec<Applier>, Option<LaneCheckpoint>)>,
        catalog_conn: Conn,
        mode: Mode,
        configured_routing: u8,
        task_id: String,
    ) -> Self {
        // Lanes commit together, so they differ only after a crash between two
        // lanes' commits: then the batch up to the furthest one is replayed,
        // routed as the run that cut it (which wrote the furthest checkpoints).
        let own_origin = lanes
            .first()
            .and_then(|(appliers, _)| appliers.first())
            .map_or(0, |applier| applier.origin);
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
            _ => (None, configured_routing),
        };
        Self {
            lanes: lanes
                .into_iter()
                .map(|(appliers, resumed_at)| {
                    let resumed_at = resumed_at.map(|c| c.position);
                    let tasks = appliers
                        .into_iter()
                        .map(|applier| {
                            let (commands, receiver) = mpsc::channel(LANE_COMMANDS);
                            let rows_applied = Arc::new(AtomicU64::new(0));
                            let lane = Lane {
                                applier,
                                resumed_at: resumed_at.clone(),
                            };
                            let task = tokio::spawn(
                                run_lane(lane, receiver, rows_applied.clone())
                                    .instrument(tracing::Span::current()),
                            );
                            LaneTask {
                                commands,
                                rows_applied,
                                task,
                            }
                        })
                        .collect();
                    LaneHandle {
                        pending: Vec::new(),
                        tasks,
                    }
                })
                .collect(),
            batches_handed: 0,
            catalog_conn,
            catalog: SourceDefinitions::default(),
            key_layouts: FastMap::default(),
            task_id,
            in_flight: None,
            mode,
            causality: FastMap::default(),
            groups: Groups::default(),
            batch_end: None,
            batch_rows: 0,
            batch_bytes: 0,
            transaction: Vec::new(),
            transaction_change_keys: Vec::new(),
            transaction_foldable: true,
            transaction_rows: 0,
            transaction_bytes: 0,
            in_transaction: false,
            changed_in_transaction: None,
            streaming: false,
            replay_until,
            routing,
            configured_routing,
            own_origin,
            transaction_origin: None,
            batch_origin: own_origin,
            skipped_to: None,
            passed_to: None,
        }
    }

    /// The replay is over: from the next batch on, route as this version does.
    fn end_replay(&mut self) {
        self.replay_until = None;
        self.routing = self.configured_routing;
    }

    /// The mode of batches handed over from now on.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Rows applied by batches the lanes have finished.
    pub fn rows_applied(&self) -> u64 {
        self.lanes
            .iter()
            .flat_map(|l| &l.tasks)
            .map(|t| t.rows_applied.load(Ordering::Relaxed))
            .sum()
    }

    /// Which of each lane's tasks takes the next batch (and the rows a
    /// streaming transaction sends ahead of it).
    fn next_task(&self) -> usize {
        (self.batches_handed % TASKS_PER_LANE as u64) as usize
    }

    /// Lane 1's task for the next batch.
    fn first_lane_task(&self) -> &LaneTask {
        &self.lanes[0].tasks[self.next_task()]
    }

    /// The lane a transaction touching no queued key goes to.
    fn hashed_lane(&self, keys: &[u64]) -> usize {
        keys.first()
            .map_or(0, |k| (*k % self.lanes.len() as u64) as usize)
    }

    /// The lane for work with these key hashes: the one already holding any
    /// of them, or by hash. Work depending on several lanes' queues makes
    /// them one (nothing is applied before the batch is handed over, so
    /// their queues can still be merged in order); returns the lanes merged
    /// away.
    fn place(&mut self, keys: &[u64]) -> (usize, Vec<usize>) {
        let (lane, merged) = match lanes_holding(&self.causality, keys) {
            Some((first, others)) => {
                for &other in &others {
                    self.merge_lanes(other, first);
                }
                (first, others)
            }
            None => (self.hashed_lane(keys), Vec::new()),
        };
        for &key in keys {
            self.causality.insert(key, lane);
        }
        (lane, merged)
    }

    /// Routing 2: the row changes of a transaction on tables whose changes
    /// commute across keys go each to the lane of its own key, so that
    /// transactions sharing a row no longer pull whole lanes together.
    fn route_rows(&mut self, work: RowsWork, change_keys: Vec<Vec<u64>>) {
        if let [keys] = change_keys.as_slice() {
            // One row change (most rows events): the work goes whole, with
            // no parts to split it into and no position to copy.
            let (lane, _) = self.place(keys);
            self.lanes[lane].pending.push(work);
            return;
        }
        let RowsWork {
            kind,
            columns,
            changes,
            bytes,
            position,
            source,
            route,
        } = work;
        let total = changes.len().max(1);
        let mut parts: Vec<Vec<RowChange>> = self.lanes.iter().map(|_| Vec::new()).collect();
        for (change, keys) in changes.into_iter().zip(change_keys) {
            let (lane, merged) = self.place(&keys);
            for from in merged {
                // Different keys of one rows event: their order does not matter.
                let moved = std::mem::take(&mut parts[from]);
                parts[lane].extend(moved);
            }
            parts[lane].push(change);
        }
        for (lane, changes) in parts.into_iter().enumerate() {
            if changes.is_empty() {
                continue;
            }
            self.lanes[lane].pending.push(RowsWork {
                kind,
                columns,
                bytes: bytes * changes.len() / total,
                changes,
                position: position.clone(),
                source: source.clone(),
                route: route.clone(),
            });
        }
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

    /// Every lane has committed every batch handed to it.
    fn lanes_idle(&self) -> bool {
        self.in_flight
            .as_ref()
            .is_none_or(|flight| flight.gate.is_open())
    }

    /// A batch is in the lanes and some lane has not answered for it yet.
    /// Unlike [`Lanes::lanes_idle`] (the gate), this ends when a lane ends
    /// without passing the gate, so waiting on [`Lanes::landed`] while it
    /// holds cannot spin or hang.
    pub fn writing(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|flight| {
            flight
                .done
                .iter()
                .any(|answer| matches!(answer, Answer::Awaited(_)))
        })
    }

    /// Until every lane has answered for the batch in flight (committed it,
    /// failed it, or ended). Cancel-safe: the answers are kept for
    /// [`Lanes::commit_batch`] and [`Lanes::idle`] to collect.
    pub async fn landed(&mut self) {
        if let Some(flight) = &mut self.in_flight {
            for (number, answer) in flight.done.iter_mut().enumerate() {
                answer.receive(number + 1).await;
            }
        }
    }

    /// Whole transactions are routed and not yet handed to the lanes.
    pub fn has_batch(&self) -> bool {
        self.batch_end.is_some()
    }

    /// Rows routed into the batch and not yet handed to the lanes.
    pub fn pending_rows(&self) -> usize {
        self.batch_rows + self.transaction_rows
    }

    pub fn replaying(&self) -> bool {
        self.replay_until.is_some()
    }

    /// Inside a source transaction: its statements (SAVEPOINT, say) belong
    /// to it and must not end it.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// The first table the open source transaction changed, if any.
    pub fn changed_in_transaction(&self) -> Option<(&str, &str)> {
        self.changed_in_transaction
            .as_deref()
            .map(|route| (route.db.as_str(), route.table.as_str()))
    }

    /// The open transaction relays changes first written on `origin`.
    pub fn set_transaction_origin(&mut self, origin: u32) {
        self.transaction_origin = Some(origin);
    }

    fn transaction_origin(&self) -> u32 {
        self.transaction_origin.unwrap_or(self.own_origin)
    }

    pub fn begin_transaction(&mut self) {
        self.in_transaction = true;
        self.transaction_origin = None;
        self.changed_in_transaction = None;
        self.transaction.clear();
        self.transaction_change_keys.clear();
        self.transaction_foldable = true;
        self.transaction_rows = 0;
        self.transaction_bytes = 0;
        self.streaming = false;
    }

    pub async fn rows(&mut self, work: RowsWork) -> SyncResult<()> {
        if self.changed_in_transaction.is_none() {
            self.changed_in_transaction = Some(work.route.clone());
        }
        if self.streaming {
            return self.stream(work).await;
        }
        let (change_keys, foldable) = self.key_hashes(&work).await?;
        self.transaction_change_keys.push(change_keys);
        self.transaction_foldable &= foldable;
        self.transaction_rows += work.changes.len();
        self.transaction_bytes += work.bytes;
        self.transaction.push(work);
        if self.transaction_rows > BIG_TRANSACTION_ROWS
            || self.transaction_bytes > BIG_TRANSACTION_BYTES
        {
            // Barrier: everything before it committed, then everything of
            // this transaction goes through lane 1.
            self.commit_batch().await?;
            self.settle().await?;
            self.batch_origin = self.transaction_origin();
            self.streaming = true;
            for work in std::mem::take(&mut self.transaction) {
                self.stream(work).await?;
            }
        }
        Ok(())
    }

    async fn stream(&mut self, work: RowsWork) -> SyncResult<()> {
        // Bounded: a huge transaction waits here for lane 1 to keep up.
        let origin = self.batch_origin;
        self.first_lane_task()
            .commands
            .send(Command::Stream { work, origin })
            .await
            .map_err(|_| lane_ended(1))
    }

    /// The open transaction ended with nothing to apply, and its end is no
    /// place to checkpoint (see `Item::Commit::own`).
    pub fn discard_transaction(&mut self) {
        self.in_transaction = false;
        self.changed_in_transaction = None;
        self.transaction.clear();
        self.transaction_change_keys.clear();
        self.transaction_rows = 0;
        self.transaction_bytes = 0;
    }

    /// The open transaction was dts's own write read back (see
    /// `transform::loop_marker`): nothing of it applies. With `data`, an
    /// idle task's checkpoint moves past it (see [`Lanes::idle`]); without,
    /// it never causes a write.
    pub fn skip_looped(&mut self, position: BinlogPosition, data: bool) {
        self.discard_transaction();
        if data {
            self.skipped_to = Some(position.clone());
        }
        self.passed_to = Some(position);
    }

    /// The transaction ended at `position`: route it, and hand the batch to
    /// the lanes when it is full. Returns the position last committed, if a
    /// batch finished meanwhile.
    pub async fn end_transaction(
        &mut self,
        position: BinlogPosition,
    ) -> SyncResult<Option<BinlogPosition>> {
        self.in_transaction = false;
        self.changed_in_transaction = None;
        self.skipped_to = None;
        self.passed_to = None;
        if self.streaming {
            self.streaming = false;
            self.batch_end = Some(position);
            return self.commit_batch().await;
        }
        let mut committed = None;
        let origin = self.transaction_origin();
        if origin != self.batch_origin {
            // A batch carries one origin: the one before ends here (not
            // while replaying a batch, which must be cut as it was).
            if !self.replaying() {
                committed = self.commit_batch().await?;
            }
            self.batch_origin = origin;
        }
        let works = std::mem::take(&mut self.transaction);
        let change_keys = std::mem::take(&mut self.transaction_change_keys);
        if self.routing == ROW_ROUTING && self.transaction_foldable {
            for (work, keys) in works.into_iter().zip(change_keys) {
                self.route_rows(work, keys);
            }
        } else if self.routing == GROUP_ROUTING {
            if !works.is_empty() {
                let keys = change_keys.into_iter().flatten().flatten();
                self.groups.add(works, self.transaction_rows, keys);
            }
        } else if !works.is_empty() {
            let keys: Vec<u64> = change_keys.iter().flatten().flatten().copied().collect();
            let conflicting = self.routing == 0
                && keys
                    .iter()
                    .filter_map(|k| self.causality.get(k))
                    .collect::<BTreeSet<_>>()
                    .len()
                    > 1;
            let lane = if conflicting {
                // Routing 0 committed the batch here instead of merging.
                committed = self.commit_batch().await?;
                let lane = self.hashed_lane(&keys);
                for key in keys {
                    self.causality.insert(key, lane);
                }
                lane
            } else {
                self.place(&keys).0
            };
            self.lanes[lane].pending.extend(works);
        }
        self.batch_rows += self.transaction_rows;
        self.batch_bytes += self.transaction_bytes;
        self.transaction_rows = 0;
        self.transaction_bytes = 0;
        self.batch_end = Some(position.clone());
        if let Some(until) = &self.replay_until {
            if until.at_or_before(&position) {
                let committed = self.commit_batch().await;
                self.end_replay();
                return committed;
            }
            return Ok(committed);
        }
        if self.batch_rows >= BATCH_ROWS
            || self.batch_bytes >= BATCH_BYTES
            || (self.batch_rows >= EAGER_ROWS && self.lanes_idle())
        {
            return self.commit_batch().await;
        }
        Ok(committed)
    }

    /// Nothing more to read right now: make everything routed durable (not
    /// while replaying a batch, whose cut must stay as it was). Returns the
    /// position the task is now at, if it moved: the one committed, or the
    /// end of the transactions passed over after it.
    pub async fn idle(&mut self) -> SyncResult<Option<BinlogPosition>> {
        if self.replaying() {
            return self.settle().await;
        }
        if let Some(skipped) = self.skipped_to.take() {
            self.batch_end = Some(skipped);
        }
        let committed = self.commit_all().await?;
        // Past what was committed: transactions with nothing to apply.
        Ok(self.passed_to.take().or(committed))
    }

    /// Hands the batch to the lanes and waits until every lane committed it.
    pub async fn commit_all(&mut self) -> SyncResult<Option<BinlogPosition>> {
        let earlier = self.commit_batch().await?;
        Ok(self.settle().await?.or(earlier))
    }

    /// Hands the routed batch to the lanes, then waits until the one before
    /// it is committed everywhere; returns that one's end. Each lane folds
    /// its share, writes it once every lane has committed the batch before,
    /// and commits with the batch end, while the caller routes on.
    pub async fn commit_batch(&mut self) -> SyncResult<Option<BinlogPosition>> {
        let Some(end) = self.batch_end.take() else {
            return Ok(None);
        };
        if !self.groups.is_empty() {
            let shares = self.groups.deal(self.lanes.len());
            for (lane, share) in self.lanes.iter_mut().zip(shares) {
                if lane.pending.is_empty() {
                    // Moved, not copied.
                    lane.pending = share;
                } else {
                    lane.pending.extend(share);
                }
            }
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            // Each lane's share: one lane holding nearly all of it means
            // hot rows tied the batch's transactions into one group (or,
            // before routing 3, merged the lanes).
            let shares: Vec<usize> = self
                .lanes
                .iter()
                .map(|l| l.pending.iter().map(|w| w.changes.len()).sum())
                .collect();
            debug!(
                rows = self.batch_rows,
                bytes = self.batch_bytes,
                ?shares,
                "batch handed to the lanes"
            );
        }
        let gate = Gate::new(self.lanes.len());
        let after = self.in_flight.as_ref().map(|flight| flight.gate.clone());
        let mut done = Vec::with_capacity(self.lanes.len());
        let task = self.next_task();
        self.batches_handed += 1;
        for (number, lane) in self.lanes.iter_mut().enumerate() {
            let (reply, answer) = oneshot::channel();
            let batch = Command::Batch {
                works: std::mem::take(&mut lane.pending),
                checkpoint: end.clone(),
                mode: self.mode,
                routing: self.routing,
                origin: self.batch_origin,
                after: after.clone(),
                gate: gate.clone(),
                done: reply,
            };
            lane.tasks[task]
                .commands
                .send(batch)
                .await
                .map_err(|_| lane_ended(number + 1))?;
            done.push(Answer::Awaited(answer));
        }
        self.causality.clear();
        self.batch_rows = 0;
        self.batch_bytes = 0;
        let committed = self.settle().await?;
        self.in_flight = Some(InFlight { end, done, gate });
        Ok(committed)
    }

    /// Waits for the batch the lanes are applying; returns its end.
    async fn settle(&mut self) -> SyncResult<Option<BinlogPosition>> {
        let Some(flight) = self.in_flight.take() else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        for (number, answer) in flight.done.into_iter().enumerate() {
            answer.into_result(number + 1).await?;
        }
        debug!(
            waited_ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
        Ok(Some(flight.end))
    }

    /// A statement (DDL) at `position`: a barrier, then lane 1 runs its
    /// `runs` (schema history and destination) unless it is already past
    /// it. Returns whether they ran.
    pub async fn execute_ddl(
        &mut self,
        work: DdlWork,
        position: &BinlogPosition,
        tolerate_applied: bool,
    ) -> SyncResult<bool> {
        self.commit_all().await?;
        let (reply, answer) = oneshot::channel();
        self.first_lane_task()
            .commands
            .send(Command::Ddl {
                work,
                position: position.clone(),
                tolerate_applied,
                done: reply,
            })
            .await
            .map_err(|_| lane_ended(1))?;
        answer.await.map_err(|_| lane_ended(1))?
    }

    /// After a statement at `position` ran (DDL) or was passed over: every lane
    /// checkpoints past it.
    pub async fn after_statement(
        &mut self,
        position: BinlogPosition,
        schema_changed: bool,
    ) -> SyncResult<()> {
        if schema_changed {
            self.catalog.clear();
            self.key_layouts.clear();
            for (number, lane) in self.lanes.iter().enumerate() {
                for task in &lane.tasks {
                    task.commands
                        .send(Command::ForgetTables)
                        .await
                        .map_err(|_| lane_ended(number + 1))?;
                }
            }
        }
        let replay_ends = self
            .replay_until
            .as_ref()
            .is_some_and(|u| u.at_or_before(&position));
        self.skipped_to = None;
        self.passed_to = None;
        self.batch_end = Some(position);
        self.commit_all().await?;
        if replay_ends {
            self.end_replay();
        }
        Ok(())
    }

    /// Key hashes (every unique key, before and after images) of each row
    /// change of a rows event, and whether the table's changes fold (see
    /// `compact`), that is, commute across keys.
    async fn key_hashes(&mut self, work: &RowsWork) -> SyncResult<(Vec<Vec<u64>>, bool)> {
        // Images read by the source's definition; keys hashed with the
        // destination table's name (see `KeyLayout`). Keyed by the source
        // name's address, which the cached layout holds.
        let layout_key = (Arc::as_ptr(&work.source) as usize, work.columns);
        if self.key_layouts.len() >= MAX_KEY_LAYOUTS && !self.key_layouts.contains_key(&layout_key)
        {
            self.key_layouts.clear();
        }
        let layout = match self.key_layouts.entry(layout_key) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(vacant) => {
                let table = self
                    .catalog
                    .get(&mut self.catalog_conn, &self.task_id, &work.source)
                    .await?;
                vacant.insert(KeyLayout::new(work, table)?)
            }
        };
        let (table, foldable, image_of) = (&layout.table, layout.foldable, &layout.image_of);
        let table_hash = &layout.table_hash;
        let mut all = Vec::with_capacity(work.changes.len());
        let mut scratch = Vec::new();
        for change in &work.changes {
            let mut keys = Vec::new();
            for image in [&change.before, &change.after].into_iter().flatten() {
                for (index_no, key) in table.unique_keys.iter().enumerate() {
                    let mut hash = table_hash.clone();
                    hash.write(&[index_no as u8]);
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
                    if complete && !keys.contains(&hash.finish()) {
                        keys.push(hash.finish());
                    }
                }
            }
            all.push(keys);
        }
        Ok((all, foldable))
    }
}

/// Source tables with a key layout at once, at most: the reader's names
/// key them, which a new reader makes anew (see `apply::MAX_RESOLVED`).
const MAX_KEY_LAYOUTS: usize = 1024;

/// What routing needs of a source table for images of a given width,
/// worked out once (until DDL) rather than for every rows event: its
/// definition in the schema history, whether its changes fold, the image
/// position of each table column, if present, and the table's part of
/// every key hash.
struct KeyLayout {
    /// Held, never read: while it is cached, no other name can take the
    /// address it is cached under.
    _source: Arc<TableName>,
    table: Arc<crate::source::catalog::Table>,
    foldable: bool,
    image_of: Vec<Option<usize>>,
    /// The destination table's name, hashed: keys are hashed with it, so
    /// that merged shards' changes to one row meet in one lane.
    table_hash: Fnv,
}

impl KeyLayout {
    fn new(work: &RowsWork, table: Arc<crate::source::catalog::Table>) -> SyncResult<Self> {
        let mapping = image_mapping(&table, work.columns)?;
        let mut image_of = vec![None; table.columns.len()];
        for (image_index, &column) in mapping.iter().enumerate() {
            image_of[column] = Some(image_index);
        }
        let mut table_hash = Fnv::new();
        table_hash.write(work.db().as_bytes());
        table_hash.write(&[0]);
        table_hash.write(work.table().as_bytes());
        table_hash.write(&[0]);
        Ok(Self {
            _source: work.source.clone(),
            foldable: crate::sink::compact::foldable(&table),
            image_of,
            table,
            table_hash,
        })
    }
}

/// The transactions of a batch in groups that share no unique-key value with
/// each other (routing 3): a union-find over the transactions' indexes.
#[derive(Default)]
struct Groups {
    transactions: Vec<Vec<RowsWork>>,
    rows: Vec<usize>,
    parent: Vec<usize>,
    /// Key hash -> a transaction of the batch that touched it.
    holder: FastMap<u64, usize>,
}

impl Groups {
    fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    /// Adds the next transaction of the batch, with its row count and key
    /// hashes, to the group of every transaction sharing a key with it.
    fn add(&mut self, works: Vec<RowsWork>, rows: usize, keys: impl IntoIterator<Item = u64>) {
        let index = self.transactions.len();
        self.transactions.push(works);
        self.rows.push(rows);
        self.parent.push(index);
        for key in keys {
            match self.holder.entry(key) {
                Entry::Occupied(holder) => {
                    let other = *holder.get();
                    self.join(other, index);
                }
                Entry::Vacant(free) => {
                    free.insert(index);
                }
            }
        }
    }

    fn root(&mut self, mut index: usize) -> usize {
        while self.parent[index] != index {
            // Path halving keeps later lookups short.
            self.parent[index] = self.parent[self.parent[index]];
            index = self.parent[index];
        }
        index
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }

    /// Deals the groups to `lanes` lanes and empties the batch: largest
    /// group first, each to the lane with the fewest rows so far (the lowest
    /// number on a tie), so that one hot group does not land on a lane
    /// already full. Each lane gets its transactions in binlog order. A pure
    /// function of the transactions added, so a replay deals them alike.
    fn deal(&mut self, lanes: usize) -> Vec<Vec<RowsWork>> {
        let count = self.transactions.len();
        let roots: Vec<usize> = (0..count).map(|index| self.root(index)).collect();
        let mut group_rows = vec![0usize; count];
        for (index, &root) in roots.iter().enumerate() {
            group_rows[root] += self.rows[index];
        }
        let mut groups: Vec<usize> = (0..count).filter(|&i| roots[i] == i).collect();
        groups.sort_by_key(|&group| (std::cmp::Reverse(group_rows[group]), group));
        let mut load = vec![0usize; lanes.max(1)];
        let mut lane_of_group = vec![0usize; count];
        for group in groups {
            // The first of the least loaded: `min_by_key` keeps the first.
            let lane = (0..load.len()).min_by_key(|&lane| load[lane]).unwrap_or(0);
            load[lane] += group_rows[group];
            lane_of_group[group] = lane;
        }
        // Sized up front: grown by doubling, each share's buffer would be
        // copied and its fresh pages faulted in again for every batch.
        let mut works_of_lane = vec![0usize; load.len()];
        for (index, works) in self.transactions.iter().enumerate() {
            works_of_lane[lane_of_group[roots[index]]] += works.len();
        }
        let mut shares: Vec<Vec<RowsWork>> =
            works_of_lane.into_iter().map(Vec::with_capacity).collect();
        // Drained, not taken: the list keeps its capacity for the next batch.
        for (index, works) in self.transactions.drain(..).enumerate() {
            shares[lane_of_group[roots[index]]].extend(works);
        }
        self.rows.clear();
        self.parent.clear();
        self.holder.clear();
        shares
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
        BinlogValue::Value(other) => crate::sink::compact::encode_value(other, out),
        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
    }
}

/// FNV-1a: a hash that is the same in every process and version, which the
/// replay after a restart relies on.
#[derive(Clone)]
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
    use super::{lanes_holding, routing_bytes, Fnv, Gate, LaneCheckpoint};
    use mysql_async::binlog::value::BinlogValue;
    use mysql_async::Value;

    fn routed(value: Value) -> Vec<u8> {
        let mut out = Vec::new();
        routing_bytes(&BinlogValue::Value(value), &mut out);
        out
    }

    /// Routing replays must place work exactly as before: the lowest lane
    /// holding a key, then the others ascending, as an ordered set gives.
    #[test]
    fn lanes_holding_keys_are_the_lowest_then_the_others_ascending() {
        let causality: foldhash::HashMap<u64, usize> =
            [(10, 2), (11, 0), (12, 3), (13, 2), (14, 1)]
                .into_iter()
                .collect();
        let keys: Vec<u64> = (9..16).collect();
        // Every ordered choice of up to four keys, against an ordered set.
        let mut choices: Vec<Vec<u64>> = vec![vec![]];
        for _ in 0..4 {
            let longer: Vec<Vec<u64>> = choices
                .iter()
                .flat_map(|c| {
                    keys.iter().map(move |k| {
                        let mut c = c.clone();
                        c.push(*k);
                        c
                    })
                })
                .collect();
            choices.extend(longer);
        }
        for chosen in choices {
            let held: std::collections::BTreeSet<usize> = chosen
                .iter()
                .filter_map(|k| causality.get(k).copied())
                .collect();
            let mut held = held.into_iter();
            let expected = held.next().map(|first| (first, held.collect::<Vec<_>>()));
            assert_eq!(
                lanes_holding(&causality, &chosen),
                expected,
                "keys {chosen:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_gate_opens_only_when_every_lane_committed() -> Result<(), String> {
        let gate = Gate::new(3);
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.opened().await.map_err(|e| e.to_string()) }
        });
        gate.passed(true);
        gate.passed(true);
        assert!(!gate.is_open());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "opened with a lane still writing");
        gate.passed(true);
        assert!(gate.is_open());
        waiting.await.map_err(|e| e.to_string())??;
        // A lane arriving after the gate opened does not wait.
        gate.opened().await.map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn a_failed_lane_keeps_the_next_batch_from_being_written() {
        let gate = Gate::new(2);
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.opened().await }
        });
        gate.passed(true);
        gate.passed(false);
        match waiting.await {
            Ok(Err(e)) => assert!(e.to_string().contains("failed the batch before")),
            Ok(Ok(())) => panic!("the gate opened after a lane failed"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn merged_queues_keep_binlog_order() {
        let merged = super::merge_in_binlog_order(
            vec![work_at(10), work_at(40), work_at(50)],
            vec![work_at(20), work_at(30), work_at(60)],
        );
        let order: Vec<u64> = merged.iter().map(|w| w.position.pos).collect();
        assert_eq!(order, [10, 20, 30, 40, 50, 60]);
    }

    fn work_at(pos: u64) -> super::RowsWork {
        super::RowsWork {
            kind: crate::source::binlog::RowKind::Update,
            columns: 1,
            changes: Vec::new(),
            bytes: 0,
            position: crate::source::position::BinlogPosition {
                file: "b.000001".into(),
                pos,
                gtid: None,
            },
            source: std::sync::Arc::new(crate::source::catalog::TableName {
                db: "d".into(),
                name: "t".into(),
            }),
            route: std::sync::Arc::new(dts_common::route::TableRoute {
                db: "d".into(),
                table: "t".into(),
                dml: dts_common::route::DmlSet::ALL,
                columns: dts_common::route::ColumnMap::default(),
                ddl: None,
                filter: None,
                source_column: None,
                claim: dts_common::route::Claim::Database(0),
            }),
        }
    }

    /// Deals transactions (binlog position, rows, keys) to `lanes` lanes;
    /// returns each lane's positions in order.
    fn dealt(lanes: usize, transactions: &[(u64, usize, &[u64])]) -> Vec<Vec<u64>> {
        let mut groups = super::Groups::default();
        for (pos, rows, keys) in transactions {
            groups.add(vec![work_at(*pos)], *rows, keys.iter().copied());
        }
        let shares = groups.deal(lanes);
        assert!(groups.is_empty(), "dealing empties the batch");
        shares
            .iter()
            .map(|share| share.iter().map(|w| w.position.pos).collect())
            .collect()
    }

    #[test]
    fn transactions_sharing_a_key_go_to_one_lane_in_binlog_order_and_the_rest_spread() {
        // 10 and 30 share key 1; 50 links 20 (key 2) and 40 (key 3).
        let lanes = dealt(
            3,
            &[
                (10, 1, &[1]),
                (20, 1, &[2]),
                (30, 1, &[1, 4]),
                (40, 1, &[3]),
                (50, 1, &[2, 3]),
                (60, 1, &[5]),
            ],
        );
        assert_eq!(lanes, [vec![20, 40, 50], vec![10, 30], vec![60]]);
    }

    #[test]
    fn a_shared_row_ties_only_its_own_transactions_and_the_biggest_group_is_dealt_first() {
        // Routing 1 would have merged the lanes of 10 and 20 when 30 touched
        // both keys, and sent 40 to that merged lane if its key hashed there.
        let batch: [(u64, usize, &[u64]); 5] = [
            (10, 2, &[7]),
            (20, 2, &[8]),
            (30, 2, &[7, 8]),
            (40, 1, &[9]),
            (50, 1, &[10]),
        ];
        let lanes = dealt(2, &batch);
        assert_eq!(lanes, [vec![10, 20, 30], vec![40, 50]]);
        // The same batch deals the same way (a replay relies on it).
        assert_eq!(lanes, dealt(2, &batch));
    }

    #[test]
    fn independent_transactions_fill_the_lanes_evenly() {
        let transactions: Vec<(u64, usize, Vec<u64>)> = (0..100u64)
            .map(|i| (i, 1 + (i % 3) as usize, vec![i]))
            .collect();
        let borrowed: Vec<(u64, usize, &[u64])> = transactions
            .iter()
            .map(|(pos, rows, keys)| (*pos, *rows, keys.as_slice()))
            .collect();
        let lanes = dealt(4, &borrowed);
        let loads: Vec<usize> = lanes
            .iter()
            .map(|lane| lane.iter().map(|&pos| 1 + (pos % 3) as usize).sum())
            .collect();
        let (least, most) = (loads.iter().min(), loads.iter().max());
        assert!(
            most.zip(least).is_some_and(|(m, l)| m - l <= 1),
            "{loads:?}"
        );
        for lane in &lanes {
            assert!(
                lane.windows(2).all(|w| w[0] < w[1]),
                "binlog order: {lane:?}"
            );
        }
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
        let plain: crate::source::position::BinlogPosition = serde_json::from_str(&json)?;
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
