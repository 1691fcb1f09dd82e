//! Full data sync: each table is cut into key-ordered chunks whose plan is
//! stored in the destination's chunk ledger; chunks are copied in parallel,
//! each chunk's rows and its `done` mark committed in one fenced transaction.
//! A runtime that dies loses only the chunks it had in flight; whoever owns
//! the task next copies exactly the chunks not marked done. A table's last
//! chunk is followed by the end of its copy window (see copy_window) and the
//! indexes schema sync deferred. Planners cut the tables into chunks (see
//! plan) while the copiers copy.

mod plan;

use crate::endpoint::Database;
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::copy_window;
use crate::meta::deferred_index;
use crate::meta::Meta;
use crate::progress::Progress;
use crate::sink::copy_rows::RowWriter;
use crate::source::catalog::Table;
use crate::source::keyset::{between, order_by, params_of};
use crate::source::position;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Rows per chunk: the unit of resumption and of one destination transaction.
pub const CHUNK_ROWS: u64 = 5_000;
/// Bound on one INSERT's text, well under the smallest default
/// max_allowed_packet (4 MiB in MySQL 5.7).
const MAX_STATEMENT_BYTES: usize = 1024 * 1024;

/// A chunk-ledger row: number, encoded bounds, done, rows copied.
type LedgerRow = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i8, i64);

#[derive(Debug, Clone)]
struct Chunk {
    table: usize,
    number: i64,
    lower: Option<Vec<Value>>,
    upper: Option<Vec<Value>>,
}

pub struct FullSync<'a> {
    pub source: &'a Database,
    pub destination: &'a Database,
    pub meta: &'a Meta,
    pub tables: &'a [Table],
    pub parallelism: usize,
    /// Keep destination rows that already have the key (conflict_mode = "ignore").
    pub keep_existing: bool,
    /// Write the copied rows to the destination's binlog (full_sync_binlog).
    pub binlog: bool,
    /// Record where each table's copy ended in the source binlog.
    pub record_copy_ends: bool,
    pub progress: &'a Progress,
    pub cancel: &'a CancellationToken,
}

/// A read of the table's rows or keys failed. Of the columns and the table
/// it names, one being gone means the table changed after it was planned:
/// waiting and retrying would read under another definition, if at all.
fn read_error(table: &Table, context: &str, err: mysql_async::Error) -> SyncError {
    match err {
        // ER_BAD_FIELD_ERROR, ER_NO_SUCH_TABLE
        mysql_async::Error::Server(e) if e.code == 1054 || e.code == 1146 => {
            SyncError::ChangedDuringCopy {
                db: table.db.clone(),
                table: table.name.clone(),
                detail: format!("{context}: {}", e.message),
            }
        }
        other => SyncError::from_driver(Side::Source, context, other),
    }
}

fn table_label(table: &Table) -> String {
    format!("{}.{}", table.db, table.name)
}

fn chunk_context(table: &Table, chunk: &Chunk) -> String {
    format!(
        "copying chunk {} of `{}`.`{}`",
        chunk.number, table.db, table.name
    )
}

/// A chunk a copier has read, and its hold on it.
struct ReadChunk<'c> {
    chunk: Chunk,
    rows: Vec<Vec<Value>>,
    /// The rows as LOAD DATA text, when they may go that way.
    load_data: Option<bytes::Bytes>,
    writer: &'c RowWriter,
    _copying: Copying<'c>,
}

/// What a copier took while writing a chunk, to go on with after it.
enum Ahead<'c> {
    Read(ReadChunk<'c>),
    Finish(usize),
}

impl FullSync<'_> {
    pub async fn run(&self) -> SyncResult<()> {
        // As many planners as copiers, so that the copiers start on as many
        // tables at once; copying starts with a table's first chunk.
        let workers = self.parallelism.max(1);
        let planners = workers.min(self.tables.len());
        let copy = Copy::new(self.tables.len(), planners);
        let planners = futures::future::join_all((0..planners).map(|_| self.planner(&copy)));
        let copiers = futures::future::join_all((0..workers).map(|_| self.copier(&copy)));
        let (planned, copied) = futures::join!(planners, copiers);
        planned
            .into_iter()
            .chain(copied)
            .collect::<SyncResult<Vec<()>>>()?;
        Ok(())
    }

    /// The table's rows are all in: the end of its copy window is where the
    /// source binlog is now (a restart may record it later than it was,
    /// which only widens the window), then its deferred indexes go on.
    async fn table_copied(
        &self,
        table: &Table,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<()> {
        if self.record_copy_ends {
            let end = position::current(src).await?;
            copy_window::record(self.meta, dst, &table.db, &table.name, &end).await?;
        }
        self.add_deferred_indexes(table).await
    }

    /// Adds the indexes schema sync deferred on a table whose rows are all in.
    /// On a connection of its own, not a copier's: an ALTER is schema, logged
    /// even when the copy's rows are not (full_sync_binlog = false).
    async fn add_deferred_indexes(&self, table: &Table) -> SyncResult<()> {
        let mut conn = self.destination.conn().await?;
        deferred_index::restore(self.meta, &mut conn, &table.target.db, &table.target.name).await
    }

    async fn copier(&self, copy: &Copy) -> SyncResult<()> {
        let mut src = self.source.conn().await?;
        // Text comes back as the column's own bytes, unconverted: it is
        // written back to a column of the same character set (see copy_rows).
        src.query_drop("SET SESSION character_set_results = binary")
            .await
            .on(Side::Source, "preparing a session for copying rows")?;
        let mut dst = self.destination.conn().await?;
        if !self.binlog {
            // Undone when the connection goes back to the pool (mysql_async
            // resets pooled sessions), and explicitly below.
            dst.query_drop("SET SESSION sql_log_bin = 0")
                .await
                .on(Side::Destination, "turning the binlog off for the copy")?;
        }
        let copied = self.copy_until_done(copy, &mut src, &mut dst).await;
        if copied.is_err() {
            copy.fail();
        }
        if !self.binlog && copied.is_ok() {
            dst.query_drop("SET SESSION sql_log_bin = 1")
                .await
                .on(Side::Destination, "turning the binlog back on")?;
        }
        copied
    }

    /// Takes chunks until none is left. Each chunk is read from the source
    /// while the one before it is written: copiers whose writes share the
    /// destination's cores finish them at about the same time, and if each
    /// then read its next chunk before writing again, the destination would
    /// wait for all of them at once (about a sixth of a pinned copy).
    async fn copy_until_done<'c>(
        &self,
        copy: &'c Copy,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<()> {
        let mut ahead: Option<Ahead<'c>> = None;
        loop {
            if self.cancel.is_cancelled() {
                return Err(SyncError::Stopped);
            }
            if copy.failed() {
                // The copier or planner that failed reports why.
                return Ok(());
            }
            let current = match ahead.take() {
                Some(Ahead::Finish(index)) => {
                    self.table_copied(&self.tables[index], src, dst).await?;
                    continue;
                }
                Some(Ahead::Read(read)) => read,
                None => {
                    // Registered before looking at the queue, so that chunks
                    // queued in between still wake this copier.
                    let planned = copy.planned.notified();
                    tokio::pin!(planned);
                    planned.as_mut().enable();
                    match copy.take(None) {
                        Some(Work::Finish(index)) => {
                            self.table_copied(&self.tables[index], src, dst).await?;
                            continue;
                        }
                        Some(Work::Copy(chunk)) => self.read_chunk(copy, chunk, src).await?,
                        None if copy.planners.load(Ordering::SeqCst) == 0 => return Ok(()),
                        // A planner is still cutting a table: its chunks may come.
                        None => {
                            planned.await;
                            continue;
                        }
                    }
                }
            };
            let next = copy.take(Some(current.chunk.table));
            let (rows_sent, rows_on_their_way) = tokio::sync::oneshot::channel();
            let writing = self.write_rows(copy, &current, rows_sent, dst);
            let (written, next) = futures::join!(writing, async {
                // Read once this chunk's rows are on their way (or its write
                // ended): the read's work then falls while the destination
                // takes them, not into the round trips that set its
                // transaction up, which the other copiers wait behind.
                let _ = rows_on_their_way.await;
                match next {
                    Some(Work::Copy(chunk)) => self
                        .read_chunk(copy, chunk, src)
                        .await
                        .map(|read| Some(Ahead::Read(read))),
                    Some(Work::Finish(index)) => Ok(Some(Ahead::Finish(index))),
                    None => Ok(None),
                }
            });
            let rows = written?;
            ahead = next?;
            let table = &self.tables[current.chunk.table];
            self.progress.chunk_done(&table_label(table), rows);
            if copy.remaining[current.chunk.table].fetch_sub(1, Ordering::SeqCst) == 1 {
                self.table_copied(table, src, dst).await?;
            }
        }
    }

    /// Reads a chunk's rows from the source; the copier holds the chunk
    /// (see [`Copy::take`]) until the returned value is dropped.
    async fn read_chunk<'c>(
        &self,
        copy: &'c Copy,
        chunk: Chunk,
        src: &mut mysql_async::Conn,
    ) -> SyncResult<ReadChunk<'c>> {
        let copying = Copying(&copy.copying[chunk.table]);
        let table = &self.tables[chunk.table];
        // Set before the table's chunks were queued.
        let Some(writer) = copy.writers[chunk.table].get() else {
            return Err(SyncError::Query {
                side: Side::Destination,
                context: format!("copying chunk {} of {}", chunk.number, table_label(table)),
                detail: "the table's chunks were queued before its plan".into(),
            });
        };
        let (mut filters, params) = between(table, chunk.lower.as_deref(), chunk.upper.as_deref());
        if let Some(condition) = &table.filter {
            // Rebuilt from the parsed condition, never the spec's text.
            filters.push(format!("({})", condition.to_sql()));
        }
        let filter = if filters.is_empty() {
            "TRUE".to_string()
        } else {
            filters.join(" AND ")
        };
        let select = format!(
            "SELECT {} FROM {} WHERE {filter} ORDER BY {}",
            writer.select_list(),
            table.qualified(),
            order_by(table)
        );
        let rows: Vec<Row> = src
            .exec(select, params_of(params))
            .await
            .map_err(|e| read_error(table, &chunk_context(table, &chunk), e))?;
        let rows: Vec<Vec<Value>> = rows.into_iter().map(Row::unwrap).collect();
        // Rendered here, while the copier's previous chunk is written, so
        // that the copier's next write starts as soon as that one commits.
        let load_data = copy
            .may_load(chunk.table, &rows)
            .then(|| bytes::Bytes::from(writer.load_data(&rows)));
        Ok(ReadChunk {
            rows,
            load_data,
            chunk,
            writer,
            _copying: copying,
        })
    }

    /// Writes a chunk read before; returns its row count. `rows_sent` is
    /// told when the statement carrying the rows goes out.
    async fn write_rows(
        &self,
        copy: &Copy,
        read: &ReadChunk<'_>,
        rows_sent: tokio::sync::oneshot::Sender<()>,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<u64> {
        let mut rows_sent = Some(rows_sent);
        let ReadChunk {
            chunk,
            rows,
            load_data,
            ..
        } = read;
        let table = &self.tables[chunk.table];
        let ctx = chunk_context(table, chunk);
        loop {
            let turn = load_data
                .as_ref()
                .filter(|_| !copy.load_refused.load(Ordering::Relaxed))
                .and_then(|data| copy.load_turn(chunk.table).map(|turn| (turn, data.clone())));
            let (turn, load) = turn.unzip();
            let written = self
                .write_chunk(read, load, &mut rows_sent, dst, &ctx)
                .await?;
            drop(turn);
            match written {
                None => {
                    if !copy.load_refused.swap(true, Ordering::Relaxed) {
                        info!(
                            "the destination refuses LOAD DATA LOCAL INFILE; copying with INSERT"
                        );
                    }
                }
                Some(()) => break,
            }
        }
        debug!(table = %table_label(table), chunk = chunk.number, rows = rows.len(), "chunk copied");
        Ok(rows.len() as u64)
    }

    /// Writes the chunk's rows and its `done` mark in one fenced transaction;
    /// `None` when the destination refused LOAD DATA LOCAL INFILE (and
    /// nothing was written).
    async fn write_chunk(
        &self,
        read: &ReadChunk<'_>,
        load: Option<bytes::Bytes>,
        rows_sent: &mut Option<tokio::sync::oneshot::Sender<()>>,
        dst: &mut mysql_async::Conn,
        ctx: &str,
    ) -> SyncResult<Option<()>> {
        let ReadChunk {
            chunk,
            rows,
            writer,
            ..
        } = read;
        let table = &self.tables[chunk.table];
        let load = match load {
            Some(data) => {
                dst.set_infile_handler(
                    async move { Ok(futures::stream::iter([Ok(data)]).boxed()) },
                );
                true
            }
            None => false,
        };
        let mut tx = dst
            .start_transaction(Default::default())
            .await
            .on(Side::Destination, ctx)?;
        self.meta.check_owner(&mut tx).await?;
        if let Some(sent) = rows_sent.take() {
            // The receiver may be gone; nothing waits on it then.
            let _ = sent.send(());
        }
        let mut written = 0;
        if load {
            match tx.query_drop(writer.load_statement()).await {
                Err(mysql_async::Error::Server(e)) if LOAD_REFUSED.contains(&e.code) => {
                    return Ok(None)
                }
                result => result.on(Side::Destination, ctx)?,
            }
            written = tx.affected_rows();
        } else {
            for statement in writer.insert_statements(rows, MAX_STATEMENT_BYTES) {
                tx.query_drop(statement).await.on(Side::Destination, ctx)?;
                written += tx.affected_rows();
            }
        }
        // LOAD DATA LOCAL skips duplicate keys instead of failing: a chunk
        // must land whole unless existing rows are kept. Checked before the
        // commit, so a short chunk is rolled back, not marked done.
        if written != rows.len() as u64 && !self.keep_existing {
            return Err(SyncError::Query {
                side: Side::Destination,
                context: ctx.to_string(),
                detail: format!(
                    "the destination took {written} of the chunk's {} rows \
                     (rows with these keys already exist there)",
                    rows.len()
                ),
            });
        }
        tx.exec_drop(
            format!(
                "UPDATE {} SET done = 1, rows_copied = ?, epoch = ? \
                 WHERE task_id = ? AND db = ? AND tbl = ? AND chunk_no = ?",
                self.meta.table("chunks")
            ),
            (
                rows.len() as u64,
                self.meta.epoch,
                &self.meta.task_id,
                &table.db,
                &table.name,
                chunk.number,
            ),
        )
        .await
        .on(Side::Destination, ctx)?;
        tx.commit().await.on(Side::Destination, ctx)?;
        Ok(Some(()))
    }
}

#[derive(Debug)]
enum Work {
    Copy(Chunk),
    /// Every chunk of the table (by index) is copied, but the last one was
    /// copied before its plan was complete: end its copy window and add its
    /// deferred indexes.
    Finish(usize),
}

/// The work the planners and copiers share.
struct Copy {
    /// Chunks as their plans are stored, and tables to finish.
    queue: Mutex<VecDeque<Work>>,
    /// The next table (by index) for a planner.
    next_to_plan: AtomicUsize,
    /// Planners still running: while any runs, more chunks may come.
    planners: AtomicUsize,
    /// Notified when chunks are queued and when a planner ends.
    planned: Notify,
    /// A copier or planner failed: the others stop taking work.
    failed: AtomicBool,
    /// Per table, set when it is planned.
    writers: Vec<OnceLock<RowWriter>>,
    /// Per table: a LOAD DATA into it is running (see [`Copy::load_turn`]).
    loading: Vec<AtomicBool>,
    /// Set once the destination refused LOCAL INFILE: INSERT from then on.
    load_refused: AtomicBool,
    /// Per table: copiers holding one of its chunks (changed under the
    /// queue's lock when taken, see [`Copy::take`]).
    copying: Vec<AtomicUsize>,
    /// Per table: chunks queued and not copied yet, plus one while its plan
    /// is not complete; whoever takes it to zero finishes the table (adds
    /// its deferred indexes).
    remaining: Vec<AtomicUsize>,
}

impl Copy {
    fn new(tables: usize, planners: usize) -> Self {
        Copy {
            queue: Mutex::new(VecDeque::new()),
            next_to_plan: AtomicUsize::new(0),
            planners: AtomicUsize::new(planners),
            planned: Notify::new(),
            failed: AtomicBool::new(false),
            writers: (0..tables).map(|_| OnceLock::new()).collect(),
            loading: (0..tables).map(|_| AtomicBool::new(false)).collect(),
            load_refused: AtomicBool::new(false),
            copying: (0..tables).map(|_| AtomicUsize::new(0)).collect(),
            remaining: (0..tables).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn next_table_to_plan(&self) -> Option<usize> {
        let index = self.next_to_plan.fetch_add(1, Ordering::SeqCst);
        (index < self.writers.len()).then_some(index)
    }

    /// Holds the table open until [`Copy::planning_ended`]: its last chunk
    /// copied before then does not finish it.
    fn planning_started(&self, table: usize) {
        self.remaining[table].store(1, Ordering::SeqCst);
    }

    fn queue_chunks(&self, table: usize, chunks: Vec<Chunk>) {
        if chunks.is_empty() {
            return;
        }
        // Counted before they can be taken, so that the count never drops
        // to zero while the plan is open.
        self.remaining[table].fetch_add(chunks.len(), Ordering::SeqCst);
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.extend(chunks.into_iter().map(Work::Copy));
        drop(queue);
        self.planned.notify_waiters();
    }

    /// The table's plan is complete; when its chunks are all copied already
    /// (or none were left to copy), a copier finishes it.
    fn planning_ended(&self, table: usize) {
        if self.remaining[table].fetch_sub(1, Ordering::SeqCst) == 1 {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.push_back(Work::Finish(table));
            drop(queue);
            self.planned.notify_waiters();
        }
    }

    fn planner_ended(&self) {
        self.planners.fetch_sub(1, Ordering::SeqCst);
        self.planned.notify_waiters();
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.planned.notify_waiters();
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// The next work: the first queued chunk of the table the fewest
    /// copiers are on (a table to finish counts as one no copier is on).
    /// Copiers on different tables neither wait for one another's AUTO-INC
    /// lock (see [`Copy::load_turn`]) nor fight over the same index pages.
    /// `held`: the table of the chunk the taker is writing, if any; the
    /// taker is not counted among its copiers, and of tables as busy as
    /// the least busy, it keeps to its own, so that a copier reading ahead
    /// does not move to a table another copier is writing.
    fn take(&self, held: Option<usize>) -> Option<Work> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // Lower ranks first: (other copiers on the table, not the taker's own).
        let rank = |work: &Work| match work {
            Work::Finish(_) => (0, true),
            Work::Copy(chunk) => {
                let own = held == Some(chunk.table);
                let copiers = self.copying[chunk.table].load(Ordering::SeqCst);
                (copiers.saturating_sub(usize::from(own)), !own)
            }
        };
        let unbeatable = (0, held.is_none());
        let mut best: Option<(usize, (usize, bool))> = None;
        for (position, work) in queue.iter().enumerate() {
            let ranked = rank(work);
            if best.is_none_or(|(_, lowest)| ranked < lowest) {
                best = Some((position, ranked));
            }
            if ranked == unbeatable {
                break;
            }
        }
        let work = queue.remove(best?.0)?;
        if let Work::Copy(chunk) = &work {
            self.copying[chunk.table].fetch_add(1, Ordering::SeqCst);
        }
        Some(work)
    }

    /// Whether these rows of the table may go by LOAD DATA at all.
    fn may_load(&self, table: usize, rows: &[Vec<Value>]) -> bool {
        !self.load_refused.load(Ordering::Relaxed)
            && self.writers[table]
                .get()
                .is_some_and(|writer| writer.loads_exactly(rows))
    }

    /// Whether to write rows that may go by LOAD DATA (see
    /// [`Copy::may_load`]) that way (`Some`, held while it runs) or by
    /// INSERT (`None`). InnoDB holds a table's AUTO-INC lock to the end of a
    /// LOAD DATA (innodb_autoinc_lock_mode 1, the default), so a second
    /// load into the same table would only wait: one copier loads into such
    /// a table while the others insert into it.
    fn load_turn(&self, table: usize) -> Option<LoadTurn<'_>> {
        let writer = self.writers[table].get()?;
        if !writer.has_auto_increment() {
            return Some(LoadTurn(None));
        }
        let loading = &self.loading[table];
        loading
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| LoadTurn(Some(loading)))
    }
}

/// A copier's hold on one of a table's chunks; ends when dropped.
struct Copying<'a>(&'a AtomicUsize);

impl Drop for Copying<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A copier's turn to LOAD DATA into a table; ends when dropped.
struct LoadTurn<'a>(Option<&'a AtomicBool>);

impl Drop for LoadTurn<'_> {
    fn drop(&mut self) {
        if let Some(loading) = self.0 {
            loading.store(false, Ordering::Release);
        }
    }
}

/// The server's answers when LOCAL INFILE is off: MariaDB 10.11+ 4166,
/// older MariaDB and MySQL 5.7 1148, MySQL 8 3948.
const LOAD_REFUSED: [u16; 3] = [4166, 1148, 3948];

#[cfg(test)]
mod tests {
    use super::{Chunk, Copy, Copying, Work};
    use std::sync::atomic::Ordering;

    fn chunk(table: usize, number: i64) -> Chunk {
        Chunk {
            table,
            number,
            lower: None,
            upper: None,
        }
    }

    fn taken(work: Option<Work>) -> (usize, i64) {
        match work {
            Some(Work::Copy(c)) => (c.table, c.number),
            other => panic!("took {other:?}, not a chunk"),
        }
    }

    #[test]
    fn copiers_take_chunks_of_the_table_fewest_copiers_are_on() {
        let copy = Copy::new(2, 1);
        copy.queue_chunks(0, vec![chunk(0, 0), chunk(0, 1)]);
        copy.queue_chunks(1, vec![chunk(1, 0), chunk(1, 1)]);
        assert_eq!(taken(copy.take(None)), (0, 0));
        // Table 0 has a copier now: the next one goes to table 1, though
        // table 0's chunk comes first in the queue.
        assert_eq!(taken(copy.take(None)), (1, 0));
        // Both busy alike: queue order.
        assert_eq!(taken(copy.take(None)), (0, 1));
        // A copier leaving table 1 makes it the least busy.
        drop(Copying(&copy.copying[1]));
        assert_eq!(taken(copy.take(None)), (1, 1));
        assert!(copy.take(None).is_none());
    }

    #[test]
    fn a_copier_reading_ahead_keeps_to_its_table() {
        let copy = Copy::new(2, 1);
        copy.queue_chunks(0, vec![chunk(0, 0), chunk(0, 1)]);
        copy.queue_chunks(1, vec![chunk(1, 0), chunk(1, 1)]);
        assert_eq!(taken(copy.take(None)), (0, 0));
        assert_eq!(taken(copy.take(None)), (1, 0));
        // The copier writing table 1's chunk 0 reads ahead: both tables have
        // one copier besides it, and it keeps to its own.
        assert_eq!(taken(copy.take(Some(1))), (1, 1));
        // Table 1 has two holds now (one copier); the copier on table 0
        // keeps to table 0 as well.
        assert_eq!(taken(copy.take(Some(0))), (0, 1));
        assert!(copy.take(Some(0)).is_none());
    }

    #[test]
    fn a_copier_reading_ahead_leaves_a_table_another_copier_is_on() {
        let copy = Copy::new(2, 1);
        copy.queue_chunks(0, vec![chunk(0, 0), chunk(0, 1), chunk(0, 2)]);
        copy.queue_chunks(1, vec![chunk(1, 0)]);
        assert_eq!(taken(copy.take(None)), (0, 0));
        assert_eq!(taken(copy.take(None)), (1, 0));
        // The copier on table 1 has nothing of it left to take: table 0 is
        // where the other copier is, but the only work there is.
        assert_eq!(taken(copy.take(Some(1))), (0, 1));
        // A third copier, holding nothing, takes table 0's next chunk too.
        assert_eq!(taken(copy.take(None)), (0, 2));
    }

    #[test]
    fn a_table_is_finished_once_both_its_plan_and_its_chunks_are_done() {
        let copy = Copy::new(1, 1);
        copy.planning_started(0);
        copy.queue_chunks(0, vec![chunk(0, 0)]);
        assert_eq!(taken(copy.take(None)), (0, 0));
        // Its only chunk so far is copied while the plan is still open: the
        // copier must not finish the table.
        assert_eq!(copy.remaining[0].fetch_sub(1, Ordering::SeqCst), 2);
        copy.queue_chunks(0, vec![chunk(0, 1)]);
        copy.planning_ended(0);
        assert_eq!(taken(copy.take(None)), (0, 1));
        // The last chunk's copier finishes it; nothing else is queued.
        assert_eq!(copy.remaining[0].fetch_sub(1, Ordering::SeqCst), 1);
        assert!(copy.take(None).is_none());
    }

    #[test]
    fn a_plan_ending_after_its_last_chunk_was_copied_queues_the_finish() {
        let copy = Copy::new(1, 1);
        copy.planning_started(0);
        copy.queue_chunks(0, vec![chunk(0, 0)]);
        assert_eq!(taken(copy.take(None)), (0, 0));
        copy.remaining[0].fetch_sub(1, Ordering::SeqCst);
        copy.planning_ended(0);
        assert!(matches!(copy.take(None), Some(Work::Finish(0))));
    }
}
