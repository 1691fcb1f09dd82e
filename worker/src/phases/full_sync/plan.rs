//! Cutting tables into chunks while the copiers copy. A table's plan is
//! stored in the destination's chunk ledger a batch at a time (1, 2, 4, ...
//! chunks), and each batch is queued for the copiers as soon as it is
//! stored: the first chunk is copied after one boundary query, not after the
//! whole table's key was walked. A plan is complete when its last chunk has
//! no upper bound; a runtime that died while planning leaves a prefix of the
//! plan, which the next owner keeps (its done chunks are not copied again)
//! and goes on from where it ends.

use super::{read_error, table_label, Chunk, Copy, FullSync, LedgerRow, CHUNK_ROWS};
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::progress::TableProgress;
use crate::sink::copy_rows::RowWriter;
use crate::source::catalog::Table;
use crate::source::keyset::{after, decode_bound, encode_bound, order_by, params_of};
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};
use std::collections::HashMap;
use tracing::info;

/// The largest batch of chunks planned and stored at once. Batches start at
/// one chunk, so that copying starts early, and double up to this.
const MAX_PLAN_BATCH: usize = 64;

/// What the ledger holds of a table's plan.
#[derive(Debug)]
struct StoredPlan {
    /// Stored chunks not copied yet.
    undone: Vec<Chunk>,
    /// Where planning goes on; `None` when the stored plan is complete.
    resume: Option<Resume>,
    progress: TableProgress,
}

/// The point a plan goes on from: the upper bound of its last stored chunk
/// (`None`: the table's start) and the next chunk's number.
#[derive(Debug, Clone, PartialEq)]
struct Resume {
    after: Option<Vec<Value>>,
    next_number: i64,
}

impl StoredPlan {
    /// Reads a table's ledger rows (in chunk order). Only the last chunk of
    /// a complete plan has no upper bound.
    fn read(table: usize, rows: Vec<LedgerRow>, estimated_rows: u64) -> Result<Self, String> {
        let resume = match rows.last() {
            None => Some(Resume {
                after: None,
                next_number: 0,
            }),
            Some((_, _, None, _, _)) => None,
            Some((number, _, Some(upper), _, _)) => {
                let after = decode_bound(Some(upper.clone())).ok_or_else(|| {
                    format!("the upper bound of stored chunk {number} cannot be read")
                })?;
                Some(Resume {
                    after: Some(after),
                    next_number: number + 1,
                })
            }
        };
        let done = rows.iter().filter(|row| row.3 != 0);
        let progress = TableProgress {
            chunks_total: rows.len() as u64,
            chunks_done: done.clone().count() as u64,
            rows_copied: done.map(|row| row.4.max(0) as u64).sum(),
            rows_estimated: estimated_rows,
        };
        let undone = rows
            .into_iter()
            .filter(|row| row.3 == 0)
            .map(|(number, lower, upper, _, _)| Chunk {
                table,
                number,
                lower: decode_bound(lower),
                upper: decode_bound(upper),
            })
            .collect();
        Ok(Self {
            undone,
            resume,
            progress,
        })
    }
}

impl FullSync<'_> {
    /// One planner: plans tables off the copy's list until none is left, on
    /// a source and a destination connection of its own. Copiers wait for
    /// chunks while any planner runs.
    pub(super) async fn planner(&self, copy: &Copy) -> SyncResult<()> {
        let planned = self.plan_tables(copy).await;
        if planned.is_err() {
            copy.fail();
        }
        copy.planner_ended();
        planned
    }

    async fn plan_tables(&self, copy: &Copy) -> SyncResult<()> {
        let mut src = self.source.conn().await?;
        let mut dst = self.destination.conn().await?;
        while let Some(index) = copy.next_table_to_plan() {
            self.plan_table(copy, index, &mut src, &mut dst).await?;
        }
        Ok(())
    }

    /// Queues what the ledger holds of the table's plan, then plans and
    /// queues the rest a batch at a time.
    async fn plan_table(
        &self,
        copy: &Copy,
        index: usize,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<()> {
        let table = &self.tables[index];
        let started = std::time::Instant::now();
        let charsets = self.destination_charsets(table, dst).await?;
        let _ = copy.writers[index].set(RowWriter::new(table, &charsets, self.keep_existing));
        copy.planning_started(index);
        let stored = self.stored_plan(index, table, dst).await?;
        if stored.progress.chunks_total > 0 {
            info!(
                table = %table_label(table),
                total = stored.progress.chunks_total,
                done = stored.progress.chunks_done,
                complete = stored.resume.is_none(),
                "resuming from the chunk ledger"
            );
        }
        self.progress
            .set_table(&table_label(table), stored.progress);
        let mut to_copy = stored.undone.len();
        copy.queue_chunks(index, stored.undone);
        if let Some(mut resume) = stored.resume {
            let mut batch = 1;
            loop {
                if self.cancel.is_cancelled() {
                    return Err(SyncError::Stopped);
                }
                if copy.failed() {
                    // Another copier or planner failed: the task stops, and
                    // its error is the one reported.
                    return Ok(());
                }
                let (chunks, complete) = self.cut(table, index, &mut resume, batch, src).await?;
                self.store(table, &chunks, dst).await?;
                self.progress
                    .chunks_planned(&table_label(table), chunks.len() as u64);
                to_copy += chunks.len();
                copy.queue_chunks(index, chunks);
                if complete {
                    break;
                }
                batch = (batch * 2).min(MAX_PLAN_BATCH);
            }
        }
        info!(
            table = %table_label(table),
            chunks = to_copy,
            planned_ms = started.elapsed().as_millis() as u64,
            "chunks to copy"
        );
        copy.planning_ended(index);
        Ok(())
    }

    /// The next `batch` chunks from `resume` on, and whether the last of
    /// them ends the table.
    async fn cut(
        &self,
        table: &Table,
        index: usize,
        resume: &mut Resume,
        batch: usize,
        src: &mut mysql_async::Conn,
    ) -> SyncResult<(Vec<Chunk>, bool)> {
        let mut chunks = Vec::with_capacity(batch);
        while chunks.len() < batch {
            let upper = self
                .next_boundary(table, resume.after.as_deref(), src)
                .await?;
            let complete = upper.is_none();
            chunks.push(Chunk {
                table: index,
                number: resume.next_number,
                lower: resume.after.take(),
                upper: upper.clone(),
            });
            resume.after = upper;
            resume.next_number += 1;
            if complete {
                return Ok((chunks, true));
            }
        }
        Ok((chunks, false))
    }

    /// The key of the `CHUNK_ROWS`th row after `after` (from the table's
    /// start when `None`): the next chunk's upper bound, or `None` when the
    /// rows left make the last chunk.
    async fn next_boundary(
        &self,
        table: &Table,
        after_bound: Option<&[Value]>,
        src: &mut mysql_async::Conn,
    ) -> SyncResult<Option<Vec<Value>>> {
        let ctx = format!("cutting `{}`.`{}` into chunks", table.db, table.name);
        let keys = order_by(table);
        let (filter, params) = match after_bound {
            Some(bound) => after(table, bound),
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
        Ok(row.map(Row::unwrap))
    }

    /// What the ledger holds of the table's plan.
    async fn stored_plan(
        &self,
        index: usize,
        table: &Table,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<StoredPlan> {
        let ctx = format!("reading the chunk plan of `{}`.`{}`", table.db, table.name);
        let rows: Vec<LedgerRow> = dst
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
        StoredPlan::read(index, rows, table.estimated_rows).map_err(|detail| SyncError::Query {
            side: Side::Destination,
            context: ctx,
            detail,
        })
    }

    /// Stores a batch of the table's plan in one fenced transaction.
    async fn store(
        &self,
        table: &Table,
        chunks: &[Chunk],
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<()> {
        let ctx = format!("storing the chunk plan of `{}`.`{}`", table.db, table.name);
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunks.len()].join(", ");
        let mut params: Vec<Value> = Vec::with_capacity(chunks.len() * 7);
        for chunk in chunks {
            params.extend([
                Value::from(&self.meta.task_id),
                Value::from(&table.db),
                Value::from(&table.name),
                Value::from(chunk.number),
                Value::from(encode_bound(chunk.lower.as_deref())),
                Value::from(encode_bound(chunk.upper.as_deref())),
                Value::from(self.meta.epoch),
            ]);
        }
        let mut tx = dst
            .start_transaction(Default::default())
            .await
            .on(Side::Destination, &ctx)?;
        self.meta.check_owner(&mut tx).await?;
        tx.exec_drop(
            format!(
                "INSERT INTO {} (task_id, db, tbl, chunk_no, lower_bound, upper_bound, epoch) \
                 VALUES {rows}",
                self.meta.table("chunks")
            ),
            params_of(params),
        )
        .await
        .on(Side::Destination, &ctx)?;
        tx.commit().await.on(Side::Destination, &ctx)
    }

    /// The destination table's column character sets, by column name. Not
    /// `catalog::load_table_from`, which also demands a key: a table kept
    /// with conflict_mode = "ignore" need not have one to be copied into.
    async fn destination_charsets(
        &self,
        table: &Table,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<HashMap<String, Option<String>>> {
        let ctx = format!("reading the columns of {} on the destination", table.target);
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
}

#[cfg(test)]
mod tests {
    use super::{Resume, StoredPlan};
    use crate::phases::full_sync::LedgerRow;
    use crate::source::keyset::encode_bound;
    use mysql_async::Value;

    fn bound(key: i64) -> Option<Vec<u8>> {
        encode_bound(Some(&[Value::Int(key)]))
    }

    /// chunk_no, lower, upper, done, rows copied.
    fn row(number: i64, lower: Option<i64>, upper: Option<i64>, done: bool) -> LedgerRow {
        (
            number,
            lower.and_then(bound),
            upper.and_then(bound),
            done as i8,
            if done { 5_000 } else { 0 },
        )
    }

    #[test]
    fn an_empty_ledger_plans_from_the_start() {
        let plan = StoredPlan::read(3, Vec::new(), 10).unwrap();
        assert!(plan.undone.is_empty());
        assert_eq!(
            plan.resume,
            Some(Resume {
                after: None,
                next_number: 0
            })
        );
        assert_eq!(plan.progress.chunks_total, 0);
        assert_eq!(plan.progress.rows_estimated, 10);
    }

    #[test]
    fn a_complete_plan_queues_only_its_undone_chunks() {
        let rows = vec![
            row(0, None, Some(100), true),
            row(1, Some(100), Some(200), false),
            row(2, Some(200), None, false),
        ];
        let plan = StoredPlan::read(1, rows, 0).unwrap();
        assert_eq!(plan.resume, None);
        let undone: Vec<_> = plan.undone.iter().map(|c| (c.table, c.number)).collect();
        assert_eq!(undone, vec![(1, 1), (1, 2)]);
        assert_eq!(plan.undone[1].lower, Some(vec![Value::Int(200)]));
        assert_eq!(plan.undone[1].upper, None);
        assert_eq!(plan.progress.chunks_total, 3);
        assert_eq!(plan.progress.chunks_done, 1);
        assert_eq!(plan.progress.rows_copied, 5_000);
    }

    #[test]
    fn a_plan_cut_short_goes_on_after_its_last_stored_bound() {
        let rows = vec![
            row(0, None, Some(100), true),
            row(1, Some(100), Some(200), true),
        ];
        let plan = StoredPlan::read(0, rows, 0).unwrap();
        assert!(plan.undone.is_empty());
        assert_eq!(
            plan.resume,
            Some(Resume {
                after: Some(vec![Value::Int(200)]),
                next_number: 2
            })
        );
    }

    #[test]
    fn an_unreadable_last_bound_is_an_error_not_a_restart_from_the_start() {
        let mut rows = vec![row(0, None, Some(100), true)];
        rows[0].2 = Some(b"not json".to_vec());
        let error = StoredPlan::read(0, rows, 0).unwrap_err();
        assert!(error.contains("chunk 0"), "{error}");
    }
}
