//! Full data sync: each table is cut into key-ordered chunks whose plan is
//! stored in the destination's chunk ledger; chunks are copied in parallel,
//! each chunk's rows and its `done` mark committed in one fenced transaction.
//! A runtime that dies loses only the chunks it had in flight; whoever owns
//! the task next copies exactly the chunks not marked done.

use crate::pipeline::catalog::Table;
use crate::pipeline::endpoint::Database;
use crate::pipeline::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::pipeline::keyset::{after, at_or_before, decode_bound, encode_bound, order_by};
use crate::pipeline::meta::Meta;
use crate::pipeline::progress::{Progress, TableProgress};
use dts_common::mysql::quote_ident;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Row, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Rows per chunk: the unit of resumption and of one destination transaction.
pub const CHUNK_ROWS: u64 = 5_000;
/// Bound on one INSERT: placeholders (server limit 65,535) and payload bytes.
const MAX_PLACEHOLDERS: usize = 60_000;
const MAX_STATEMENT_BYTES: usize = 4 * 1024 * 1024;

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
    pub progress: &'a Progress,
    pub cancel: &'a CancellationToken,
}

fn table_label(table: &Table) -> String {
    format!("{}.{}", table.db, table.name)
}

impl FullSync<'_> {
    pub async fn run(&self) -> SyncResult<()> {
        let mut queue = VecDeque::new();
        for (index, table) in self.tables.iter().enumerate() {
            let chunks = self.plan(index, table).await?;
            queue.extend(chunks);
        }
        info!(chunks = queue.len(), "full sync: chunks to copy");
        let queue = Arc::new(Mutex::new(queue));
        let copiers = (0..self.parallelism.max(1)).map(|_| self.copier(queue.clone()));
        let results = futures::future::join_all(copiers).await;
        results.into_iter().collect::<SyncResult<Vec<()>>>()?;
        Ok(())
    }

    /// Loads the table's chunk plan from the ledger, or makes and stores one.
    async fn plan(&self, index: usize, table: &Table) -> SyncResult<Vec<Chunk>> {
        let ctx = format!("planning chunks of `{}`.`{}`", table.db, table.name);
        let mut dst = self.destination.conn().await?;
        let stored: Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>, i8, i64)> = dst
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
                .on(Side::Source, &ctx)?;
            match row {
                Some(row) => bounds.push(row.unwrap()),
                None => return Ok(bounds),
            }
        }
    }

    async fn copier(&self, queue: Arc<Mutex<VecDeque<Chunk>>>) -> SyncResult<()> {
        let mut src = self.source.conn().await?;
        let mut dst = self.destination.conn().await?;
        loop {
            if self.cancel.is_cancelled() {
                return Err(SyncError::Stopped);
            }
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some(chunk) = next else { return Ok(()) };
            let rows = self.copy_chunk(&chunk, &mut src, &mut dst).await?;
            self.progress
                .chunk_done(&table_label(&self.tables[chunk.table]), rows);
        }
    }

    async fn copy_chunk(
        &self,
        chunk: &Chunk,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<u64> {
        let table = &self.tables[chunk.table];
        let ctx = format!(
            "copying chunk {} of `{}`.`{}`",
            chunk.number, table.db, table.name
        );
        let columns: Vec<&str> = table.writable().map(|(_, c)| c.name.as_str()).collect();
        let column_list = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let mut filters = Vec::new();
        let mut params = Vec::new();
        if let Some(lower) = &chunk.lower {
            let (sql, p) = after(table, lower);
            filters.push(sql);
            params.extend(p);
        }
        if let Some(upper) = &chunk.upper {
            let (sql, p) = at_or_before(table, upper);
            filters.push(sql);
            params.extend(p);
        }
        let filter = if filters.is_empty() {
            "TRUE".to_string()
        } else {
            filters.join(" AND ")
        };
        let select = format!(
            "SELECT {column_list} FROM {} WHERE {filter} ORDER BY {}",
            table.qualified(),
            order_by(table)
        );
        let rows: Vec<Row> = src
            .exec(select, params_of(params))
            .await
            .on(Side::Source, &ctx)?;
        let count = rows.len() as u64;

        let mut tx = dst
            .start_transaction(Default::default())
            .await
            .on(Side::Destination, &ctx)?;
        self.meta.check_owner(&mut tx).await?;
        let verb = if self.keep_existing {
            "INSERT IGNORE"
        } else {
            "INSERT"
        };
        let mut batch: Vec<Value> = Vec::new();
        let mut batch_rows = 0usize;
        let mut batch_bytes = 0usize;
        let flush = |values: Vec<Value>, n: usize| {
            let row_marks = format!("({})", vec!["?"; columns.len()].join(", "));
            let sql = format!(
                "{verb} INTO {} ({column_list}) VALUES {}",
                table.qualified(),
                vec![row_marks; n].join(", ")
            );
            (sql, values)
        };
        for row in rows {
            let values = row.unwrap();
            batch_bytes += values.iter().map(value_size).sum::<usize>();
            batch.extend(values);
            batch_rows += 1;
            if (batch_rows + 1) * columns.len() > MAX_PLACEHOLDERS
                || batch_bytes > MAX_STATEMENT_BYTES
            {
                let (sql, values) = flush(std::mem::take(&mut batch), batch_rows);
                tx.exec_drop(sql, Params::Positional(values))
                    .await
                    .on(Side::Destination, &ctx)?;
                batch_rows = 0;
                batch_bytes = 0;
            }
        }
        if batch_rows > 0 {
            let (sql, values) = flush(batch, batch_rows);
            tx.exec_drop(sql, Params::Positional(values))
                .await
                .on(Side::Destination, &ctx)?;
        }
        tx.exec_drop(
            format!(
                "UPDATE {} SET done = 1, rows_copied = ?, epoch = ? \
                 WHERE task_id = ? AND db = ? AND tbl = ? AND chunk_no = ?",
                self.meta.table("chunks")
            ),
            (
                count,
                self.meta.epoch,
                &self.meta.task_id,
                &table.db,
                &table.name,
                chunk.number,
            ),
        )
        .await
        .on(Side::Destination, &ctx)?;
        tx.commit().await.on(Side::Destination, &ctx)?;
        debug!(table = %table_label(table), chunk = chunk.number, rows = count, "chunk copied");
        Ok(count)
    }
}

fn params_of(values: Vec<Value>) -> Params {
    if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values)
    }
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}
