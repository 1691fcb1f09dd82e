//! Full data sync: each table is cut into key-ordered chunks whose plan is
//! stored in the destination's chunk ledger; chunks are copied in parallel,
//! each chunk's rows and its `done` mark committed in one fenced transaction.
//! A runtime that dies loses only the chunks it had in flight; whoever owns
//! the task next copies exactly the chunks not marked done. A table's last
//! chunk is followed by the end of its copy window (see copy_window) and the
//! indexes schema sync deferred.

use crate::endpoint::Database;
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::copy_window;
use crate::meta::deferred_index;
use crate::meta::Meta;
use crate::progress::{Progress, TableProgress};
use crate::sink::copy_rows::RowWriter;
use crate::source::catalog::Table;
use crate::source::keyset::{after, between, decode_bound, encode_bound, order_by, params_of};
use crate::source::position;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};
use std::collections::{HashMap, VecDeque};
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

impl FullSync<'_> {
    pub async fn run(&self) -> SyncResult<()> {
        // Tables are planned by the copiers themselves, in parallel, and
        // copying starts as soon as the first plan is in.
        let copy = Copy {
            queue: Mutex::new((0..self.tables.len()).map(Work::Plan).collect()),
            planning: AtomicUsize::new(0),
            planned: Notify::new(),
            writers: self.tables.iter().map(|_| OnceLock::new()).collect(),
            loading: self.tables.iter().map(|_| AtomicBool::new(false)).collect(),
            copying: self.tables.iter().map(|_| AtomicUsize::new(0)).collect(),
            remaining: self.tables.iter().map(|_| AtomicUsize::new(0)).collect(),
            load_refused: AtomicBool::new(false),
        };
        let copiers = (0..self.parallelism.max(1)).map(|_| self.copier(&copy));
        let results = futures::future::join_all(copiers).await;
        results.into_iter().collect::<SyncResult<Vec<()>>>()?;
        Ok(())
    }

    /// Plans a table and queues its chunks among the others.
    async fn plan_table(
        &self,
        copy: &Copy,
        index: usize,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<()> {
        let table = &self.tables[index];
        let started = std::time::Instant::now();
        let charsets = self.destination_charsets(table).await?;
        let _ = copy.writers[index].set(RowWriter::new(table, &charsets, self.keep_existing));
        let chunks = self.plan(index, table).await?;
        copy.remaining[index].store(chunks.len(), Ordering::SeqCst);
        if chunks.is_empty() {
            // Copied before a restart, perhaps up to its indexes.
            self.table_copied(table, src, dst).await?;
        }
        info!(
            table = %table_label(table),
            chunks = chunks.len(),
            planned_ms = started.elapsed().as_millis() as u64,
            "chunks to copy"
        );
        let mut queue = copy.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (plans, queued): (Vec<Work>, Vec<Work>) =
            queue.drain(..).partition(|w| matches!(w, Work::Plan(_)));
        let chunks = chunks.into_iter().map(Work::Copy).collect();
        queue.extend(plans);
        queue.extend(interleave(vec![queued, chunks]));
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

    /// Loads the table's chunk plan from the ledger, or makes and stores one.
    async fn plan(&self, index: usize, table: &Table) -> SyncResult<Vec<Chunk>> {
        let ctx = format!("planning chunks of `{}`.`{}`", table.db, table.name);
        let mut dst = self.destination.conn().await?;
        let stored: Vec<LedgerRow> = dst
            .exec(
                format!(
                    "SELECT chunk_no, lower_bound, upper_bound, done, rows_copied FROM {} \
                     WHERE task_id = ? AND db = ? AND tbl = ? ORDER BY chunk_no",
                    self.meta.table("chunks")
                ),
                (&self.meta.task_id, &table.db, &table.name),
            )
            .await
            .on(Side::Destination, &ctx)?;
        if !stored.is_empty() {
            let done: Vec<_> = stored.iter().filter(|c| c.3 != 0).collect();
            self.progress.set_table(
                &table_label(table),
                TableProgress {
                    chunks_total: stored.len() as u64,
                    chunks_done: done.len() as u64,
                    rows_copied: done.iter().map(|c| c.4.max(0) as u64).sum(),
                    rows_estimated: table.estimated_rows,
                },
            );
            info!(table = %table_label(table), total = stored.len(), done = done.len(), "resuming from the chunk ledger");
            return Ok(stored
                .into_iter()
                .filter(|c| c.3 == 0)
                .map(|(number, lower, upper, _, _)| Chunk {
                    table: index,
                    number,
                    lower: decode_bound(lower),
                    upper: decode_bound(upper),
                })
                .collect());
        }
        let bounds = self.boundaries(table).await?;
        let mut chunks = Vec::new();
        let mut lower: Option<Vec<Value>> = None;
        for (number, upper) in bounds.into_iter().map(Some).chain([None]).enumerate() {
            chunks.push(Chunk {
                table: index,
                number: number as i64,
                lower: lower.clone(),
                upper: upper.clone(),
            });
            lower = upper;
        }
        let mut tx = dst
            .start_transaction(Default::default())
            .await
            .on(Side::Destination, &ctx)?;
        self.meta.check_owner(&mut tx).await?;
        for chunk in &chunks {
            tx.exec_drop(
                format!(
                    "INSERT INTO {} (task_id, db, tbl, chunk_no, lower_bound, upper_bound, epoch) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                    self.meta.table("chunks")
                ),
                (
                    &self.meta.task_id,
                    &table.db,
                    &table.name,
                    chunk.number,
                    encode_bound(chunk.lower.as_deref()),
                    encode_bound(chunk.upper.as_deref()),
                    self.meta.epoch,
                ),
            )
            .await
            .on(Side::Destination, &ctx)?;
        }
        tx.commit().await.on(Side::Destination, &ctx)?;
        self.progress.set_table(
            &table_label(table),
            TableProgress {
                chunks_total: chunks.len() as u64,
                chunks_done: 0,
                rows_copied: 0,
                rows_estimated: table.estimated_rows,
            },
        );
        Ok(chunks)
    }

    /// Upper bounds of every chunk but the last, walking the key index.
    async fn boundaries(&self, table: &Table) -> SyncResult<Vec<Vec<Value>>> {
        let ctx = format!("cutting `{}`.`{}` into chunks", table.db, table.name);
        let mut src = self.source.conn().await?;
        let keys = order_by(table);
        let mut bounds: Vec<Vec<Value>> = Vec::new();
        loop {
            if self.cancel.is_cancelled() {
                return Err(SyncError::Stopped);
            }
            let (filter, params) = match bounds.last() {
                Some(last) => after(table, last),
                None => ("TRUE".to_string(), Vec::new()),
            };
            let sql = format!(
                "SELECT {keys} FROM {} WHERE {filter} ORDER BY {keys} LIMIT 1 OFFSET {}",
                table.qualified(),
                CHUNK_ROWS - 1
            );
            let row: Option<Row> = src
                .exec_first(sql, params_of(params))
                .await
                .map_err(|e| read_error(table, &ctx, e))?;
            match row {
                Some(row) => bounds.push(row.unwrap()),
                None => return Ok(bounds),
            }
        }
    }

    /// The destination table's column character sets, by column name. Not
    /// `catalog::load_table_from`, which also demands a key: a table kept
    /// with conflict_mode = "ignore" need not have one to be copied into.
    async fn destination_charsets(
        &self,
        table: &Table,
    ) -> SyncResult<HashMap<String, Option<String>>> {
        let ctx = format!("reading the columns of {} on the destination", table.target);
        let mut dst = self.destination.conn().await?;
        let columns: Vec<(String, Option<String>)> = dst
            .exec(
                "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&table.target.db, &table.target.name),
            )
            .await
            .on(Side::Destination, &ctx)?;
        Ok(columns.into_iter().collect())
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
        if !self.binlog && copied.is_ok() {
            dst.query_drop("SET SESSION sql_log_bin = 1")
                .await
                .on(Side::Destination, "turning the binlog back on")?;
        }
        copied
    }

    async fn copy_until_done(
        &self,
        copy: &Copy,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<()> {
        loop {
            if self.cancel.is_cancelled() {
                return Err(SyncError::Stopped);
            }
            // Registered before looking at the queue, so that a plan
            // finishing in between still wakes this copier.
            let planned = copy.planned.notified();
            tokio::pin!(planned);
            planned.as_mut().enable();
            match copy.take() {
                Some(Work::Plan(index)) => {
                    let planned = self.plan_table(copy, index, src, dst).await;
                    copy.planning.fetch_sub(1, Ordering::SeqCst);
                    copy.planned.notify_waiters();
                    planned?;
                }
                Some(Work::Copy(chunk)) => {
                    let _copying = Copying(&copy.copying[chunk.table]);
                    let rows = self.copy_chunk(copy, &chunk, src, dst).await?;
                    let table = &self.tables[chunk.table];
                    self.progress.chunk_done(&table_label(table), rows);
                    if copy.remaining[chunk.table].fetch_sub(1, Ordering::SeqCst) == 1 {
                        self.table_copied(table, src, dst).await?;
                    }
                }
                None if copy.planning.load(Ordering::SeqCst) == 0 => return Ok(()),
                // Another copier is planning a table: its chunks may come.
                None => planned.await,
            }
        }
    }

    async fn copy_chunk(
        &self,
        copy: &Copy,
        chunk: &Chunk,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<u64> {
        let table = &self.tables[chunk.table];
        // Set before the table's chunks were queued.
        let Some(writer) = copy.writers[chunk.table].get() else {
            return Err(SyncError::Query {
                side: Side::Destination,
                context: format!("copying chunk {} of {}", chunk.number, table_label(table)),
                detail: "the table's chunks were queued before its plan".into(),
            });
        };
        let ctx = format!(
            "copying chunk {} of `{}`.`{}`",
            chunk.number, table.db, table.name
        );
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
            .map_err(|e| read_error(table, &ctx, e))?;
        let rows: Vec<Vec<Value>> = rows.into_iter().map(Row::unwrap).collect();
        let count = rows.len() as u64;

        loop {
            let turn = copy.load_turn(chunk.table, &rows);
            let written = self
                .write_chunk(writer, chunk, &rows, turn.is_some(), dst, &ctx)
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
        debug!(table = %table_label(table), chunk = chunk.number, rows = count, "chunk copied");
        Ok(count)
    }

    /// Writes the chunk's rows and its `done` mark in one fenced transaction;
    /// `None` when the destination refused LOAD DATA LOCAL INFILE (and
    /// nothing was written).
    async fn write_chunk(
        &self,
        writer: &RowWriter,
        chunk: &Chunk,
        rows: &[Vec<Value>],
        load: bool,
        dst: &mut mysql_async::Conn,
        ctx: &str,
    ) -> SyncResult<Option<()>> {
        let table = &self.tables[chunk.table];
        if load {
            let data = bytes::Bytes::from(writer.load_data(rows));
            dst.set_infile_handler(async move { Ok(futures::stream::iter([Ok(data)]).boxed()) });
        }
        let mut tx = dst
            .start_transaction(Default::default())
            .await
            .on(Side::Destination, ctx)?;
        self.meta.check_owner(&mut tx).await?;
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

enum Work {
    /// Cut the table (by index) into chunks, or load its stored plan.
    Plan(usize),
    Copy(Chunk),
}

/// The work the copiers share.
struct Copy {
    /// Plans first, then chunks with tables interleaved.
    queue: Mutex<VecDeque<Work>>,
    /// Tables being planned (counted under the queue's lock).
    planning: AtomicUsize,
    planned: Notify,
    /// Per table, set when it is planned.
    writers: Vec<OnceLock<RowWriter>>,
    /// Per table: a LOAD DATA into it is running (see [`Copy::load_turn`]).
    loading: Vec<AtomicBool>,
    /// Set once the destination refused LOCAL INFILE: INSERT from then on.
    load_refused: AtomicBool,
    /// Per table: copiers holding one of its chunks (changed under the
    /// queue's lock when taken, see [`Copy::take`]).
    copying: Vec<AtomicUsize>,
    /// Per table: chunks not copied yet; the copier that copies the last
    /// one adds the table's deferred indexes.
    remaining: Vec<AtomicUsize>,
}

impl Copy {
    /// The next work: plans first, then the first queued chunk of the table
    /// the fewest copiers are on. Copiers on different tables neither wait
    /// for one another's AUTO-INC lock (see [`Copy::load_turn`]) nor fight
    /// over the same index pages.
    fn take(&self) -> Option<Work> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let busy = |work: &Work| match work {
            Work::Plan(_) => 0,
            Work::Copy(chunk) => self.copying[chunk.table].load(Ordering::SeqCst),
        };
        let mut best: Option<(usize, usize)> = None;
        for (position, work) in queue.iter().enumerate() {
            let copiers = busy(work);
            if best.is_none_or(|(_, fewest)| copiers < fewest) {
                best = Some((position, copiers));
            }
            if copiers == 0 {
                break;
            }
        }
        let work = queue.remove(best?.0)?;
        match &work {
            Work::Plan(_) => self.planning.fetch_add(1, Ordering::SeqCst),
            Work::Copy(chunk) => self.copying[chunk.table].fetch_add(1, Ordering::SeqCst),
        };
        Some(work)
    }

    /// Whether to write these rows of the table by LOAD DATA (`Some`, held
    /// while it runs) or by INSERT (`None`). InnoDB holds a table's AUTO-INC
    /// lock to the end of a LOAD DATA (innodb_autoinc_lock_mode 1, the
    /// default), so a second load into the same table would only wait: one
    /// copier loads into such a table while the others insert into it.
    fn load_turn(&self, table: usize, rows: &[Vec<Value>]) -> Option<LoadTurn<'_>> {
        let writer = self.writers[table].get()?;
        if self.load_refused.load(Ordering::Relaxed) || !writer.loads_exactly(rows) {
            return None;
        }
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

/// One item of each list in turn: chunks of different tables alternate, so
/// that copiers running together mostly write to different tables.
fn interleave<T>(lists: Vec<Vec<T>>) -> VecDeque<T> {
    let mut tables: Vec<std::vec::IntoIter<T>> = lists.into_iter().map(Vec::into_iter).collect();
    let mut queue = VecDeque::new();
    loop {
        let before = queue.len();
        queue.extend(tables.iter_mut().filter_map(Iterator::next));
        if queue.len() == before {
            return queue;
        }
    }
}

/// The server's answers when LOCAL INFILE is off: MariaDB 10.11+ 4166,
/// older MariaDB and MySQL 5.7 1148, MySQL 8 3948.
const LOAD_REFUSED: [u16; 3] = [4166, 1148, 3948];

#[cfg(test)]
mod tests {
    use super::{interleave, Chunk, Copy, Copying, Work};
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::{Mutex, OnceLock};

    fn chunk(table: usize, number: i64) -> Work {
        Work::Copy(Chunk {
            table,
            number,
            lower: None,
            upper: None,
        })
    }

    fn copy_of(tables: usize, queue: Vec<Work>) -> Copy {
        Copy {
            queue: Mutex::new(queue.into()),
            planning: AtomicUsize::new(0),
            planned: tokio::sync::Notify::new(),
            writers: (0..tables).map(|_| OnceLock::new()).collect(),
            loading: (0..tables).map(|_| AtomicBool::new(false)).collect(),
            load_refused: AtomicBool::new(false),
            copying: (0..tables).map(|_| AtomicUsize::new(0)).collect(),
            remaining: (0..tables).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn taken(work: Option<Work>) -> (usize, i64) {
        match work {
            Some(Work::Copy(c)) => (c.table, c.number),
            Some(Work::Plan(t)) => panic!("took the plan of table {t}"),
            None => panic!("took nothing"),
        }
    }

    #[test]
    fn copiers_take_chunks_of_the_table_fewest_copiers_are_on() {
        let copy = copy_of(2, vec![chunk(0, 0), chunk(0, 1), chunk(1, 0), chunk(1, 1)]);
        assert_eq!(taken(copy.take()), (0, 0));
        // Table 0 has a copier now: the next one goes to table 1, though
        // table 0's chunk comes first in the queue.
        assert_eq!(taken(copy.take()), (1, 0));
        // Both busy alike: queue order.
        assert_eq!(taken(copy.take()), (0, 1));
        // A copier leaving table 1 makes it the least busy.
        drop(Copying(&copy.copying[1]));
        assert_eq!(taken(copy.take()), (1, 1));
        assert!(copy.take().is_none());
    }

    #[test]
    fn interleaving_takes_one_of_each_in_turn() {
        let queue = interleave(vec![vec![1, 2, 3], vec![10], vec![20, 21]]);
        assert_eq!(Vec::from(queue), vec![1, 10, 20, 2, 21, 3]);
    }
}
