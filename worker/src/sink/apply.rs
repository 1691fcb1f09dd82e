//! Applies binlog changes to the destination exactly once.
//!
//! Source transactions are grouped into destination transactions; each group
//! starts with the owner-epoch fence and ends by upserting the lane's
//! checkpoint (the end position of its last source transaction) before COMMIT.
//! After a crash the destination holds whole groups only, and the checkpoint
//! row says exactly where to resume.
//!
//! Row values are decoded with the source table's definition as of the event,
//! from the schema history (see `meta::schema_history`), and then projected
//! by column name onto the destination table, which the route may have
//! renamed, narrowed or merged.

use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::schema_history::SourceDefinitions;
use crate::meta::Meta;
mod net;
mod settle;

use crate::sink::compact::{self, Checks, First, Folded, NetStatements};
use crate::sink::conflict::{ConflictHandling, Record};
use crate::sink::convert::{
    bound_rows, placeholder, push_rendered, render, rendered_len, to_param, Conversion,
};
use crate::sink::lanes::RowsWork;
use crate::sink::projection::Projection;
use crate::source::binlog::RowKind;
use crate::source::catalog::{self, Column, Table, TableCache, TableName};
use crate::source::position::BinlogPosition;
use crate::transform::ddl::{DdlWork, Proof};
use crate::transform::filter::{self, collation::SharedCollations, BoundFilter};
use crate::transform::rows;
use dts_common::mysql::quote_ident;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};
use net::{NetStep, WriteKind};
use settle::{Change, TablePolicy};
// Looked up for every rows event: foldhash rather than SipHash.
use foldhash::HashMap;
use std::sync::{Arc, OnceLock};

const MAX_PLACEHOLDERS: usize = 60_000;
const MAX_BATCH_ROWS: usize = 1_000;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Distinct keys folded (all tables) before they are written out: bounds the
/// memory of a huge transaction streaming through one lane. Sized with a
/// batch's rows (`lanes::BATCH_ROWS`): a batch whose changes fold to fewer
/// keys than this (room is counted as two keys per change still to come)
/// is written once, at its commit.
const MAX_FOLDED_KEYS: usize = 40_000;
/// Decoded bytes folded (all tables) before they are written out, beside
/// [`MAX_FOLDED_KEYS`]: a streaming transaction of blobs reaches it long
/// before 40,000 keys. Sized with a batch's bytes (`lanes::BATCH_BYTES`),
/// so a batch's share is still written once, at its commit.
const MAX_FOLDED_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Between the full copy's start and end: rows may already be there or
    /// gone. Inserts and updates write the whole row (REPLACE), deletes
    /// tolerate absence.
    Idempotent,
    /// After the copy: every change must find the destination exactly as the
    /// source had it; a duplicate key or a missing row is an error.
    Strict,
}

/// Rows waiting to go out as one multi-row statement.
struct Batch {
    table: Arc<Table>,
    verb: Verb,
    mode: Mode,
    /// How conflicts are settled (strict mode).
    policy: Option<Arc<TablePolicy>>,
    values: Vec<Value>,
    rows: usize,
    bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Insert,
    Replace,
    Delete,
}

/// Source tables resolved at once, at most: the cache is keyed by the
/// reader's table names, which a new reader makes anew, so it is emptied
/// rather than left to grow across readers.
const MAX_RESOLVED: usize = 1024;

/// What applying a source table's rows events needs, resolved once per
/// source table and image width (until DDL). Looking each part up by name
/// for every event (the destination and source definitions, the filter,
/// the conflict policy: two strings hashed and compared each) cost a lane
/// about a fifth of its CPU in catch-up.
struct Resolved {
    /// Held, so that the address it is cached under names this table for
    /// as long as it is cached.
    _source: Arc<TableName>,
    table: Arc<Table>,
    source_table: Arc<Table>,
    /// How its rows are laid onto `table`.
    projection: Projection,
    filter: Option<Arc<BoundFilter>>,
    /// How its row images of this width decode.
    decoder: RowDecoder,
    /// Bound when strict mode first needs it (a rule naming a column the
    /// table lacks must not fail an idempotent replay).
    policy: OnceLock<Arc<TablePolicy>>,
}

/// One apply lane: a destination connection and the checkpoint row `lane`.
pub struct Applier {
    pub lane: u32,
    conn: Conn,
    meta: Meta,
    pub mode: Mode,
    /// conflict_mode = "ignore": inserts overwrite rows that are already there.
    overwrite: bool,
    tables: TableCache,
    sources: SourceDefinitions,
    /// Row filters bound to the source definition they were bound with
    /// (held, so a new definition is told by its address).
    filters: HashMap<TableName, (Arc<Table>, Arc<BoundFilter>)>,
    /// By the source name's address (see `transform::select`) and image width.
    resolved: HashMap<(usize, usize), Arc<Resolved>>,
    /// Shared by the task's appliers: reading a collation's weights is a
    /// 65,536-row query, which each lane repeating cost the destination
    /// more than the filtered catch-up itself saved.
    collations: SharedCollations,
    batch: Option<Batch>,
    /// Net changes of foldable tables (see `compact`), written at commit,
    /// with the tables' conflict policies.
    folded: Vec<(Arc<Table>, Folded, Arc<TablePolicy>)>,
    folded_keys: usize,
    /// What the folded changes' row images came to (`RowsWork::bytes`).
    folded_bytes: usize,
    in_transaction: bool,
    pub rows_applied: u64,
    /// The routing version the lanes cut the current batch with; recorded in
    /// the checkpoint (see `lanes::LaneCheckpoint`).
    pub routing: u8,
    /// The server the changes of the current batch were first written on,
    /// for the loop marker (see `meta::LOOP_MARKERS`).
    pub origin: u32,
    conflicts: Arc<ConflictHandling>,
    /// Conflicts settled in the open transaction, recorded at its commit.
    settled: Vec<Record>,
    /// Whether the session's isolation level is settled (see `begin`).
    isolation_set: bool,
    /// Savepoints to set with the next statement, sent with it rather than
    /// alone: on the hot path each costs no round trip of its own.
    pending_savepoints: Vec<&'static str>,
    /// Where committed keys go for incremental verification, if it runs.
    changed: Option<Arc<crate::verify::changed::ChangedKeys>>,
    /// The keys the open transaction changed (with `changed` only).
    touched: Vec<crate::verify::changed::ChangedRow>,
}

impl Applier {
    pub fn new(
        lane: u32,
        conn: Conn,
        meta: Meta,
        mode: Mode,
        overwrite: bool,
        conflicts: Arc<ConflictHandling>,
    ) -> Self {
        Self {
            lane,
            conn,
            mode,
            overwrite,
            tables: TableCache::default(),
            sources: SourceDefinitions::default(),
            filters: HashMap::default(),
            resolved: HashMap::default(),
            collations: SharedCollations::default(),
            batch: None,
            folded: Vec::new(),
            folded_keys: 0,
            folded_bytes: 0,
            in_transaction: false,
            rows_applied: 0,
            routing: crate::sink::lanes::ROUTING,
            origin: meta.applied_from,
            meta,
            conflicts,
            settled: Vec::new(),
            isolation_set: false,
            pending_savepoints: Vec::new(),
            changed: None,
            touched: Vec::new(),
        }
    }

    /// Reads collations through `collations`, shared with the task's other
    /// appliers.
    pub fn with_collations(mut self, collations: SharedCollations) -> Self {
        self.collations = collations;
        self
    }

    /// Hands the keys of every committed transaction to incremental
    /// verification.
    pub fn with_changed_keys(
        mut self,
        changed: Option<Arc<crate::verify::changed::ChangedKeys>>,
    ) -> Self {
        self.changed = changed;
        self
    }

    async fn begin(&mut self) -> SyncResult<()> {
        if !self.isolation_set {
            self.set_isolation().await?;
        }
        if !self.in_transaction {
            self.conn
                .query_drop("START TRANSACTION")
                .await
                .on(Side::Destination, "starting an apply transaction")?;
            self.in_transaction = true;
            self.meta
                .check_owner_relaying(&mut self.conn, self.origin)
                .await?;
        }
        Ok(())
    }

    /// Apply sessions read committed, as replication appliers do, where the
    /// destination's binlog allows it (READ COMMITTED cannot log InnoDB
    /// changes as statements). Under REPEATABLE READ a delete or locking
    /// read of a key the destination lacks (a route without inserts, rows
    /// compared under `compare_rows`) locks the gap where the key would be
    /// until the transaction ends: the destination's own writers' inserts
    /// into it waited, and another lane's could deadlock with it. Lanes
    /// never share a key, so gaps were all that could tie them.
    async fn set_isolation(&mut self) -> SyncResult<()> {
        self.isolation_set = true;
        let context = "setting the apply session's isolation level";
        let format: Option<String> = self
            .conn
            .query_first("SELECT @@SESSION.binlog_format")
            .await
            .on(Side::Destination, context)?;
        if format.is_some_and(|f| f.eq_ignore_ascii_case("STATEMENT")) {
            return Ok(());
        }
        self.conn
            .query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await
            .on(Side::Destination, context)
    }

    /// The table's definition on the destination (cached until DDL).
    pub async fn table(&mut self, db: &str, name: &str) -> SyncResult<Arc<Table>> {
        self.tables.get(&mut self.conn, db, name).await
    }

    /// Forgets table definitions after DDL.
    pub fn forget_tables(&mut self) {
        self.tables.clear();
        self.sources.clear();
        self.resolved.clear();
    }

    /// Everything `work`'s rows need, from the cache when its table was
    /// resolved before.
    async fn resolve(&mut self, work: &RowsWork) -> SyncResult<Arc<Resolved>> {
        let key = (Arc::as_ptr(&work.source) as usize, work.columns);
        if let Some(resolved) = self.resolved.get(&key) {
            return Ok(resolved.clone());
        }
        let table = self.table(work.db(), work.table()).await?;
        let source_table = self
            .sources
            .get(&mut self.conn, &self.meta.task_id, &work.source)
            .await?;
        let projection = projection(&source_table, &table, work)?;
        let filter = self.filter(&source_table, work).await?;
        let decoder = RowDecoder::new(&source_table, work.columns)?;
        if self.resolved.len() >= MAX_RESOLVED {
            self.resolved.clear();
        }
        let resolved = Arc::new(Resolved {
            _source: work.source.clone(),
            table,
            source_table,
            projection,
            filter,
            decoder,
            policy: OnceLock::new(),
        });
        self.resolved.insert(key, resolved.clone());
        Ok(resolved)
    }

    /// The route's row filter bound to `source`'s current definition; the
    /// collations it compares under are read from the destination, which
    /// knows them (the schema history's shadow tables use them).
    async fn filter(
        &mut self,
        source: &Arc<Table>,
        work: &RowsWork,
    ) -> SyncResult<Option<Arc<BoundFilter>>> {
        let Some(filter) = &work.route.filter else {
            return Ok(None);
        };
        if let Some((definition, bound)) = self.filters.get(&*work.source) {
            if Arc::ptr_eq(definition, source) {
                return Ok(Some(bound.clone()));
            }
        }
        let field = work.route.claim.to_string();
        let mut collations = self.collations.lock().await;
        let bound = filter::bind(filter, source, &mut collations, &mut self.conn)
            .await
            .map_err(|e| catalog::filter_error(Side::Destination, &field, e))?;
        let bound = Arc::new(bound);
        self.filters
            .insert((*work.source).clone(), (source.clone(), bound.clone()));
        Ok(Some(bound))
    }

    /// Whether `work` would only be folded, nothing of it written before the
    /// commit: such work may be taken while an earlier batch is still being
    /// committed by other lanes (see `lanes::Gate`).
    pub async fn folds_without_writing(&mut self, work: &RowsWork) -> SyncResult<bool> {
        let resolved = self.resolve(work).await?;
        // An update changing its key folds into two keys.
        let room = self.folded_keys + 2 * work.changes.len() < MAX_FOLDED_KEYS
            && self.folded_bytes + work.bytes < MAX_FOLDED_BYTES;
        Ok(room && compact::foldable(&resolved.table))
    }

    /// Applies a rows event: a foldable table's changes are folded, to be
    /// written at the commit (the transaction opens then, not here, so that
    /// folding writes nothing); any other table's are written now.
    pub async fn rows(&mut self, work: RowsWork) -> SyncResult<()> {
        // A table whose operations the route filters differs from its
        // source by design: its changes are applied as in catch-up (an
        // insert overwrites, a delete of a missing row is none).
        let mode = if work.lenient() {
            Mode::Idempotent
        } else {
            self.mode
        };
        let kind = work.kind;
        let work_bytes = work.bytes;
        let resolved = self.resolve(&work).await?;
        let Resolved {
            table,
            source_table,
            projection,
            filter: row_filter,
            decoder,
            ..
        } = &*resolved;
        let foldable = compact::foldable(table);
        if !foldable {
            self.begin().await?;
        }
        let policy = match mode {
            Mode::Strict => Some(match resolved.policy.get() {
                Some(policy) => policy.clone(),
                None => {
                    let policy = Arc::new(self.table_policy(&work, table)?);
                    resolved.policy.get_or_init(|| policy.clone());
                    policy
                }
            }),
            Mode::Idempotent => None,
        };
        // Compared rows are read before they are written (see `settle`).
        let compare = policy.is_some() && self.conflicts.rules.compare_rows;
        let row = |img| decoder.decode(source_table, img);
        for change in work.changes {
            let before = change.before.map(row).transpose()?;
            let after = change.after.map(row).transpose()?;
            let (kind, before, after) = match &row_filter {
                None => (kind, before, after),
                Some(row_filter) => match rows::through_filter(row_filter, kind, before, after) {
                    Ok(Some(change)) => change,
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(SyncError::InvalidSpec(dts_common::SpecError::new(
                            format!("{}.where", work.route.claim),
                            format!("on a row of {}: {e}", work.source),
                        )))
                    }
                },
            };
            let before = before.map(|r| projection.apply(r));
            let after = after.map(|r| projection.apply(r));
            if mode == Mode::Strict && self.changed.as_ref().is_some_and(|c| c.has_room()) {
                for image in [&before, &after].into_iter().flatten() {
                    let key = key_of(table, image);
                    if self.touched.last().is_none_or(|(_, last)| *last != key) {
                        self.touched.push((work.source.clone(), key));
                    }
                }
            }
            if foldable {
                self.fold(table, kind, before, after, mode, compare, &policy)?;
                self.rows_applied += 1;
                continue;
            }
            match (kind, before, after) {
                (RowKind::Insert, _, Some(after)) => {
                    let verb = if mode == Mode::Idempotent || self.overwrite {
                        Verb::Replace
                    } else {
                        Verb::Insert
                    };
                    self.push(table, verb, mode, &policy, writable(table, after))
                        .await?;
                }
                (RowKind::Delete, Some(before), _) => match (&policy, compare) {
                    (Some(policy), true) => {
                        self.flush().await?;
                        let key = key_of(table, &before);
                        let before = writable(table, before);
                        let change = Change {
                            key: &key,
                            first: First::UpdateOrDelete,
                            before: Some(&before),
                            after: None,
                        };
                        self.settle_each(table, policy, vec![change]).await?;
                    }
                    _ => {
                        self.push(table, Verb::Delete, mode, &policy, key_of(table, &before))
                            .await?
                    }
                },
                (RowKind::Update, Some(before), Some(after)) => {
                    let key_changed = key_of(table, &before) != key_of(table, &after);
                    match &policy {
                        None => {
                            if key_changed {
                                self.push(table, Verb::Delete, mode, &None, key_of(table, &before))
                                    .await?;
                            }
                            self.push(table, Verb::Replace, mode, &None, writable(table, after))
                                .await?;
                        }
                        Some(policy) => {
                            self.flush().await?;
                            let policy = policy.clone();
                            self.update(table, &policy, before, after, compare).await?;
                        }
                    }
                }
                (kind, _, _) => return Err(missing_image(table, kind)),
            }
            self.rows_applied += 1;
        }
        if foldable {
            self.folded_bytes += work_bytes;
        }
        if self.folded_keys >= MAX_FOLDED_KEYS || self.folded_bytes >= MAX_FOLDED_BYTES {
            self.begin().await?;
            self.flush_folded().await?;
        }
        Ok(())
    }

    /// Records a change of a foldable table in its net effect.
    #[allow(clippy::too_many_arguments)]
    fn fold(
        &mut self,
        table: &Arc<Table>,
        kind: RowKind,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
        mode: Mode,
        compare: bool,
        policy: &Option<Arc<TablePolicy>>,
    ) -> SyncResult<()> {
        let checks = match (mode, self.overwrite) {
            (Mode::Idempotent, _) => Checks::Idempotent,
            (Mode::Strict, true) => Checks::StrictOverwrite,
            (Mode::Strict, false) => Checks::Strict,
        };
        let index = match self
            .folded
            .iter()
            .position(|(t, _, _)| Arc::ptr_eq(t, table))
        {
            Some(index) => index,
            None => {
                let policy = match policy {
                    Some(policy) => policy.clone(),
                    // Idempotent: nothing is a conflict, nothing consults it.
                    None => Arc::new(TablePolicy {
                        policy: self.conflicts.rules.policy("", "").clone(),
                        column: None,
                    }),
                };
                self.folded
                    .push((table.clone(), Folded::new(checks, compare), policy));
                self.folded.len() - 1
            }
        };
        let folded = &mut self.folded[index].1;
        let keys_before = folded.len();
        // The row a change found, as the destination would have it.
        // Kept only where rows are compared: otherwise not even built.
        let keep_before = folded.keeps_before();
        let found = |before: Vec<Value>| {
            if keep_before {
                writable(table, before)
            } else {
                Vec::new()
            }
        };
        let outcome = match (kind, before, after) {
            (RowKind::Insert, _, Some(after)) => {
                folded.insert(key_of(table, &after), writable(table, after))
            }
            (RowKind::Delete, Some(before), _) => {
                folded.delete(key_of(table, &before), found(before))
            }
            (RowKind::Update, Some(before), Some(after)) => {
                let old_key = key_of(table, &before);
                let new_key = key_of(table, &after);
                if old_key == new_key {
                    folded.update(new_key, found(before), writable(table, after))
                } else {
                    folded
                        .delete(old_key, found(before))
                        .and_then(|()| folded.insert(new_key, writable(table, after)))
                }
            }
            (kind, _, _) => return Err(missing_image(table, kind)),
        };
        self.folded_keys += folded.len() - keys_before;
        outcome.map_err(|c| divergence(table, c.0.to_string()))
    }

    /// Writes the folded net changes. A table whose rows are compared goes
    /// through the slow path (see `settle`); any other is written in bulk
    /// (per table, deletes, then updates of rows that must exist, then
    /// inserts: keys are distinct, so any order gives the same rows), and
    /// when its statements find the destination other than expected, it is
    /// undone and settled on the slow path.
    async fn flush_folded(&mut self) -> SyncResult<()> {
        self.folded_keys = 0;
        self.folded_bytes = 0;
        for (table, folded, policy) in std::mem::take(&mut self.folded) {
            if folded.checks() == Checks::Idempotent {
                self.write_net(&table, folded.statements()).await?;
                continue;
            }
            if folded.keeps_before() {
                self.settle_folded(&table, &folded, &policy).await?;
                continue;
            }
            self.pending_savepoints.push(FOLD_SAVEPOINT);
            let clean = self.write_net(&table, folded.statements()).await?;
            if !clean {
                self.rollback_to(FOLD_SAVEPOINT).await?;
                self.settle_folded(&table, &folded, &policy).await?;
            }
            self.pending_savepoints.clear();
        }
        Ok(())
    }

    /// Writes a table's net statements; `false` when a statement found the
    /// destination other than expected (a conflict: the caller undoes it).
    /// Each statement is rendered while the one before it runs, so the
    /// destination does not wait for the worker between round trips.
    async fn write_net(&mut self, table: &Table, net: NetStatements<'_>) -> SyncResult<bool> {
        let upsert = net::upsert_tail(table);
        let steps = net::steps(table, net, upsert.is_some());
        let upsert = upsert.unwrap_or_default();
        let mut next = steps.first().and_then(|step| step.render(table, &upsert));
        for (index, step) in steps.iter().enumerate() {
            let following = steps.get(index + 1);
            let (clean, rendered) = tokio::join!(
                self.run_step(table, step, next.take(), &upsert),
                // Polled after the statement is sent: renders while it runs.
                async { following.and_then(|step| step.render(table, &upsert)) }
            );
            next = rendered;
            if !clean? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs one net step, given its text if it was rendered beforehand;
    /// `false` when it found the destination other than expected.
    async fn run_step(
        &mut self,
        table: &Table,
        step: &NetStep<'_>,
        sql: Option<String>,
        upsert: &str,
    ) -> SyncResult<bool> {
        let (kind, rows) = match step {
            NetStep::CheckExist(rows) => {
                let keys = self.keys_of_rows(table, rows);
                return self.all_exist(table, &keys).await;
            }
            NetStep::Write { kind, rows } => (*kind, rows),
        };
        let sql = sql.unwrap_or_else(|| net::render_write(table, kind, rows, upsert));
        match kind {
            WriteKind::TolerantDelete | WriteKind::Replace => {
                self.query(table, sql).await?;
                Ok(true)
            }
            WriteKind::Delete => Ok(self.query(table, sql).await? == rows.len()),
            WriteKind::Update => self.update_existing(table, rows, sql, upsert).await,
            WriteKind::Insert => match self.query(table, sql).await {
                Ok(_) => Ok(true),
                Err(SyncError::Query { detail, .. }) if detail.starts_with(DUPLICATE_KEY) => {
                    Ok(false)
                }
                Err(e) => Err(e),
            },
        }
    }

    async fn savepoint(&mut self, name: &str) -> SyncResult<()> {
        self.conn
            .query_drop(format!("SAVEPOINT {name}"))
            .await
            .on(Side::Destination, "setting a savepoint")
    }

    async fn rollback_to(&mut self, name: &str) -> SyncResult<()> {
        // Never set: nothing was written since.
        if let Some(at) = self.pending_savepoints.iter().position(|n| *n == name) {
            self.pending_savepoints.truncate(at);
            return Ok(());
        }
        self.conn
            .query_drop(format!("ROLLBACK TO SAVEPOINT {name}"))
            .await
            .on(Side::Destination, "undoing to a savepoint")
    }

    /// `DELETE` of the given keys; returns how many rows went.
    async fn delete_keys(&mut self, table: &Table, keys: &[&[Value]]) -> SyncResult<usize> {
        self.query(table, net::delete_statement(table, keys)).await
    }

    /// Overwrites rows that must already exist with `sql`, their upsert
    /// (`upsert` its tail), which on a table whose only unique index is the
    /// key updates exactly those rows. With `CLIENT_FOUND_ROWS` an upsert
    /// counts 2 for a row it changed and 1 for a row it inserted or found as
    /// it was, so 2 per row proves every row was there, and the count the
    /// check would otherwise cost is saved. Anything less (some row already
    /// had its new values, or was missing) is undone to a savepoint and
    /// settled by counting first. `false`: a row was missing (a conflict).
    async fn update_existing(
        &mut self,
        table: &Table,
        rows: &[&[Value]],
        sql: String,
        upsert: &str,
    ) -> SyncResult<bool> {
        self.pending_savepoints.push(UPDATE_SAVEPOINT);
        if self.query(table, sql).await? == 2 * rows.len() {
            return Ok(true);
        }
        self.rollback_to(UPDATE_SAVEPOINT).await?;
        let keys = self.keys_of_rows(table, rows);
        if !self.all_exist(table, &keys).await? {
            return Ok(false);
        }
        self.write_rows(table, "INSERT", rows, upsert).await?;
        Ok(true)
    }

    /// The key values of rows given as writable columns, in key order.
    fn keys_of_rows(&self, table: &Table, rows: &[&[Value]]) -> Vec<Vec<Value>> {
        // Where each key column (in key order) sits among a row's writable columns.
        let writable: Vec<usize> = table.writable().map(|(column, _)| column).collect();
        let key_positions: Vec<usize> = table
            .key
            .iter()
            .filter_map(|k| writable.iter().position(|c| c == k))
            .collect();
        rows.iter()
            .map(|row| key_positions.iter().map(|&i| row[i].clone()).collect())
            .collect()
    }

    /// Whether every one of `keys` is in the table.
    async fn all_exist(&mut self, table: &Table, keys: &[Vec<Value>]) -> SyncResult<bool> {
        let wanted = keys.len();
        let count_sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            table.qualified(),
            keys_in(table, keys)
        );
        let context = format!("applying to `{}`.`{}`", table.db, table.name);
        let found: Option<u64> = self
            .conn
            .query_first(count_sql)
            .await
            .on(Side::Destination, &context)?;
        Ok(found.unwrap_or(0) as usize == wanted)
    }

    /// `<verb> INTO table (writable columns) VALUES (...), ... <tail>`;
    /// returns the affected rows.
    async fn write_rows(
        &mut self,
        table: &Table,
        verb: &str,
        rows: &[&[Value]],
        tail: &str,
    ) -> SyncResult<usize> {
        self.query(table, net::rows_statement(table, verb, rows, tail))
            .await
    }

    /// Runs one statement as text, after the pending savepoints in the same
    /// round trip; returns the statement's affected rows (the last result's).
    async fn query(&mut self, table: &Table, sql: String) -> SyncResult<usize> {
        let context = format!("applying to `{}`.`{}`", table.db, table.name);
        let sql = if self.pending_savepoints.is_empty() {
            sql
        } else {
            let prefix: usize = self
                .pending_savepoints
                .iter()
                .map(|name| "SAVEPOINT ; ".len() + name.len())
                .sum();
            let mut text = String::with_capacity(prefix + sql.len());
            for name in self.pending_savepoints.drain(..) {
                text.push_str("SAVEPOINT ");
                text.push_str(name);
                text.push_str("; ");
            }
            text.push_str(&sql);
            text
        };
        self.conn
            .query_drop(sql)
            .await
            .on(Side::Destination, &context)?;
        Ok(self.conn.affected_rows() as usize)
    }

    /// Adds one row to the pending batch, sending the batch first when the row
    /// does not belong to it or it is full.
    async fn push(
        &mut self,
        table: &Arc<Table>,
        verb: Verb,
        mode: Mode,
        policy: &Option<Arc<TablePolicy>>,
        values: Vec<Value>,
    ) -> SyncResult<()> {
        let fits = self.batch.as_ref().is_some_and(|b| {
            Arc::ptr_eq(&b.table, table)
                && b.verb == verb
                && b.mode == mode
                && b.rows < MAX_BATCH_ROWS
                && b.values.len() + values.len() <= MAX_PLACEHOLDERS
                && b.bytes < MAX_BATCH_BYTES
        });
        if !fits {
            self.flush().await?;
            self.batch = Some(Batch {
                table: table.clone(),
                verb,
                mode,
                policy: policy.clone(),
                values: Vec::new(),
                rows: 0,
                bytes: 0,
            });
        }
        if let Some(batch) = self.batch.as_mut() {
            batch.bytes += values.iter().map(value_size).sum::<usize>();
            batch.values.extend(values);
            batch.rows += 1;
        }
        Ok(())
    }

    async fn flush(&mut self) -> SyncResult<()> {
        let Some(mut batch) = self.batch.take() else {
            return Ok(());
        };
        let table = &batch.table;
        let context = format!("applying to `{}`.`{}`", table.db, table.name);
        let sql = match batch.verb {
            Verb::Insert | Verb::Replace => format!(
                "{} INTO {} ({}) VALUES {}",
                if batch.verb == Verb::Insert {
                    "INSERT"
                } else {
                    "REPLACE"
                },
                table.qualified(),
                column_list(table),
                vec![row_marks(table); batch.rows].join(", ")
            ),
            Verb::Delete => format!(
                "DELETE FROM {} WHERE {}",
                table.qualified(),
                vec![key_predicate(table); batch.rows].join(" OR ")
            ),
        };
        // Strict deletes may find rows missing: undone to here, then settled.
        let settles = batch.policy.as_ref().filter(|_| batch.mode == Mode::Strict);
        if settles.is_some() && batch.verb == Verb::Delete {
            self.savepoint(BATCH_SAVEPOINT).await?;
        }
        // Kept only where a conflict may need them again.
        let values = if settles.is_some() {
            batch.values.clone()
        } else {
            std::mem::take(&mut batch.values)
        };
        let columns: Vec<&Column> = match batch.verb {
            Verb::Delete => table.key_columns().collect(),
            _ => table.writable().map(|(_, c)| c).collect(),
        };
        let values = bound_rows(&columns, values);
        let result = self.conn.exec_drop(sql, Params::Positional(values)).await;
        let conflicted = match result {
            Ok(()) => {
                batch.verb == Verb::Delete && self.conn.affected_rows() as usize != batch.rows
            }
            Err(mysql_async::Error::Server(e))
                if e.code == DUPLICATE_KEY_CODE && batch.verb == Verb::Insert =>
            {
                true
            }
            Err(e) => return Err(e).on(Side::Destination, &context),
        };
        let Some(policy) = settles.filter(|_| conflicted) else {
            return Ok(());
        };
        if batch.verb == Verb::Delete {
            self.rollback_to(BATCH_SAVEPOINT).await?;
        }
        let width = match batch.verb {
            Verb::Delete => table.key.len(),
            _ => table.writable().count(),
        };
        let rows: Vec<&[Value]> = batch.values.chunks(width.max(1)).collect();
        let keys: Vec<Vec<Value>> = match batch.verb {
            Verb::Delete => rows.iter().map(|r| r.to_vec()).collect(),
            _ => self.keys_of_rows(table, &rows),
        };
        let changes = rows
            .iter()
            .zip(&keys)
            .map(|(row, key)| match batch.verb {
                Verb::Delete => Change {
                    key,
                    first: First::UpdateOrDelete,
                    before: None,
                    after: None,
                },
                _ => Change {
                    key,
                    first: First::Insert,
                    before: None,
                    after: Some(row),
                },
            })
            .collect();
        let policy = policy.clone();
        self.settle_each(table, &policy, changes).await
    }

    /// A strict update of a table the fold does not take: in place when its
    /// row is there as expected, else settled (see `settle`). `compare`:
    /// read the row first and compare it with `before`.
    async fn update(
        &mut self,
        table: &Arc<Table>,
        policy: &TablePolicy,
        before: Vec<Value>,
        after: Vec<Value>,
        compare: bool,
    ) -> SyncResult<()> {
        let old_key = key_of(table, &before);
        let new_key = key_of(table, &after);
        let before = writable(table, before);
        let after = writable(table, after);
        if !compare {
            let assignments: Vec<String> = table
                .writable()
                .map(|(_, c)| format!("{} = {}", quote_ident(&c.name), placeholder(c)))
                .collect();
            let sql = format!(
                "UPDATE {} SET {} WHERE {}",
                table.qualified(),
                assignments.join(", "),
                key_predicate(table)
            );
            let columns: Vec<&Column> = table
                .writable()
                .map(|(_, c)| c)
                .chain(table.key_columns())
                .collect();
            let mut params = after.clone();
            params.extend(old_key.iter().cloned());
            let params = bound_rows(&columns, params);
            let context = format!("applying to `{}`.`{}`", table.db, table.name);
            self.conn
                .exec_drop(sql, Params::Positional(params))
                .await
                .on(Side::Destination, &context)?;
            if self.conn.affected_rows() == 1 {
                return Ok(());
            }
        }
        let before = compare.then_some(&before[..]);
        let changes = if old_key == new_key {
            vec![Change {
                key: &old_key,
                first: First::UpdateOrDelete,
                before,
                after: Some(&after),
            }]
        } else {
            // A new key: the old row goes, the new one comes.
            vec![
                Change {
                    key: &old_key,
                    first: First::UpdateOrDelete,
                    before,
                    after: None,
                },
                Change {
                    key: &new_key,
                    first: First::Insert,
                    before: None,
                    after: Some(&after),
                },
            ]
        };
        self.settle_each(table, policy, changes).await
    }

    /// Sends what is pending, writes the lane's checkpoint (when given) and
    /// commits. With a checkpoint, commits even when nothing else was written,
    /// so that every lane's row moves with the batch.
    pub async fn commit(&mut self, checkpoint: Option<&BinlogPosition>) -> SyncResult<()> {
        let pending = self.in_transaction || self.batch.is_some() || !self.folded.is_empty();
        if !pending && checkpoint.is_none() {
            return Ok(());
        }
        self.begin().await?;
        self.flush().await?;
        self.flush_folded().await?;
        if !self.settled.is_empty() {
            let keep = self
                .conflicts
                .log
                .reserve(self.settled.len(), self.conflicts.rules.keep);
            crate::meta::conflicts::save(
                &self.meta,
                &mut self.conn,
                self.lane,
                &self.settled,
                keep,
            )
            .await?;
        }
        if let Some(position) = checkpoint {
            let json = serde_json::to_string(&crate::sink::lanes::LaneCheckpoint {
                position: position.clone(),
                routing: self.routing,
            })
            .unwrap_or_default();
            self.meta
                .save_checkpoint(&mut self.conn, self.lane, &json)
                .await?;
        }
        self.conn
            .query_drop("COMMIT")
            .await
            .on(Side::Destination, "committing an apply transaction")?;
        self.in_transaction = false;
        if !self.settled.is_empty() {
            self.conflicts
                .log
                .committed(std::mem::take(&mut self.settled));
        }
        if let Some(changed) = &self.changed {
            changed.committed(std::mem::take(&mut self.touched));
        }
        Ok(())
    }

    /// Runs DDL (the schema history's, then the destination's) and then
    /// checkpoints after it. An error that says a statement already took
    /// effect is taken for it once its proof holds (see
    /// `transform::ddl::Proof`); `tolerate_applied`: the statements may have
    /// run before a crash (the checkpoint is just before them), so even one
    /// without a proof is.
    pub async fn execute_ddl(
        &mut self,
        work: &DdlWork,
        position: &BinlogPosition,
        tolerate_applied: bool,
    ) -> SyncResult<()> {
        self.commit(None).await?;
        let mut to_prove = Vec::new();
        for run in &work.runs {
            let context = format!(
                "applying DDL `{}`",
                run.sql.chars().take(120).collect::<String>()
            );
            if !run.schema.is_empty() {
                self.conn
                    .query_drop(format!("USE {}", quote_ident(&run.schema)))
                    .await
                    .on(Side::Destination, &context)?;
            }
            let sql = crate::transform::sql_text::strip_definer(&run.sql);
            if let Err(e) = self.conn.query_drop(&sql).await {
                let already = matches!(&e, mysql_async::Error::Server(s) if ALREADY_APPLIED.contains(&s.code));
                // Outside a replay, a statement that says its effect is
                // there (another task writing the same table ran it first,
                // say) is taken as applied only when its proof holds.
                if !(already && (tolerate_applied || run.proof.is_some())) {
                    return Err(e).on(Side::Destination, &context);
                }
                to_prove.extend(run.proof.as_ref().map(|proof| (run, proof)));
            }
        }
        self.forget_tables();
        for (run, proof) in to_prove {
            if let Some((expected, found)) = self.difference(proof).await? {
                return Err(SyncError::DdlOutcomeDiffers {
                    statement: run.sql.clone(),
                    position: position.to_string(),
                    table: proof.target.to_string(),
                    expected,
                    found,
                });
            }
        }
        if let Some(proof) = &work.verify {
            if let Some((expected, found)) = self.difference(proof).await? {
                return Err(SyncError::CutOverDiffers {
                    position: position.to_string(),
                    table: proof.target.to_string(),
                    expected,
                    found,
                });
            }
        }
        if !work.stash.is_empty() {
            self.begin().await?;
            for change in &work.stash {
                crate::meta::online_ddl::save(&self.meta, &mut self.conn, change).await?;
            }
        }
        self.commit(Some(position)).await
    }

    /// How the destination table differs from what `proof` says it is:
    /// (expected, found), or `None` when it does not.
    async fn difference(&mut self, proof: &Proof) -> SyncResult<Option<(String, String)>> {
        let context = "checking that DDL already took effect";
        let exists: Option<String> = self
            .conn
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&proof.target.db, &proof.target.name),
            )
            .await
            .on(Side::Destination, context)?;
        Ok(if proof.gone {
            exists.map(|_| ("no table".to_string(), format!("table {}", proof.target)))
        } else {
            let source = self
                .sources
                .get(&mut self.conn, &self.meta.task_id, &proof.source)
                .await?;
            let expected: Vec<String> = source
                .columns
                .iter()
                .filter_map(|c| {
                    let name = proof.columns.target(&c.name)?;
                    Some(format!("`{name}` {}", c.column_type))
                })
                .collect();
            let found: Vec<String> = match exists {
                None => Vec::new(),
                Some(_) => {
                    let table = self.table(&proof.target.db, &proof.target.name).await?;
                    table
                        .columns
                        .iter()
                        .map(|c| format!("`{}` {}", c.name, c.column_type))
                        .collect()
                }
            };
            let same = expected.len() == found.len()
                && expected
                    .iter()
                    .zip(&found)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b));
            (!same).then(|| (expected.join(", "), found.join(", ")))
        })
    }
}

/// Savepoints a strict batch part is undone to when it meets a conflict.
const FOLD_SAVEPOINT: &str = "dts_fold";
const BATCH_SAVEPOINT: &str = "dts_batch";
const UPDATE_SAVEPOINT: &str = "dts_update";
/// ER_DUP_ENTRY, and how its message starts once wrapped.
const DUPLICATE_KEY_CODE: u16 = 1062;
const DUPLICATE_KEY: &str = "error 1062 ";

/// Server errors meaning "this DDL is already in effect": duplicate column,
/// table exists, unknown table, duplicate key name, can't drop (missing).
const ALREADY_APPLIED: [u16; 5] = [1060, 1050, 1051, 1061, 1091];

fn missing_image(table: &Table, kind: RowKind) -> SyncError {
    SyncError::Query {
        side: Side::Source,
        context: format!("decoding a {kind:?} of `{}`.`{}`", table.db, table.name),
        detail: "the row event lacks the image it needs (is binlog_row_image FULL?)".into(),
    }
}

fn divergence(table: &Table, detail: String) -> SyncError {
    SyncError::Query {
        side: Side::Destination,
        context: format!("applying to `{}`.`{}` in strict mode", table.db, table.name),
        detail: format!("the destination differs from the source: {detail}"),
    }
}

/// How rows of `source` are laid onto `table`.
fn projection(source: &Table, table: &Table, work: &RowsWork) -> SyncResult<Projection> {
    // A merge records each row's source table by its source name (the
    // definition is read from the schema history, under another name).
    let recorded = work
        .route
        .source_column
        .as_deref()
        .map(|column| (column, format!("{}.{}", work.source.db, work.source.name)));
    Projection::between(source, table, &work.route.columns, recorded)
}

/// Positions in the table of the row image's columns.
pub fn image_mapping(table: &Table, image_columns: usize) -> SyncResult<Vec<usize>> {
    if image_columns == table.columns.len() {
        return Ok((0..image_columns).collect());
    }
    let stored: Vec<usize> = (0..table.columns.len())
        .filter(|&i| !table.columns[i].virtual_generated)
        .collect();
    if image_columns == stored.len() {
        return Ok(stored);
    }
    Err(SyncError::Query {
        side: Side::Destination,
        context: format!("decoding rows of `{}`.`{}`", table.db, table.name),
        detail: format!(
            "the binlog row has {image_columns} columns but the schema history's definition has {}; \
             the schema history diverged from the source",
            table.columns.len()
        ),
    })
}

/// How the row images of one source definition are decoded: where each
/// image column goes and how its values convert, decided once per
/// definition and image width.
struct RowDecoder {
    /// Position in the table of each image column.
    mapping: Vec<usize>,
    /// Each image column's conversion.
    conversions: Vec<Conversion>,
}

impl RowDecoder {
    fn new(table: &Table, image_columns: usize) -> SyncResult<Self> {
        let mapping = image_mapping(table, image_columns)?;
        let conversions = mapping
            .iter()
            .map(|&position| Conversion::of(&table.columns[position]))
            .collect();
        Ok(Self {
            mapping,
            conversions,
        })
    }

    /// A full-width row (table column order) from a row image.
    fn decode(
        &self,
        table: &Table,
        image: Vec<mysql_async::binlog::value::BinlogValue<'static>>,
    ) -> SyncResult<Vec<Value>> {
        let mut row = vec![Value::NULL; table.columns.len()];
        for ((value, &position), &conversion) in
            image.into_iter().zip(&self.mapping).zip(&self.conversions)
        {
            row[position] = to_param(&table.columns[position], conversion, value).map_err(|e| {
                SyncError::Query {
                    side: Side::Source,
                    context: format!("decoding a row of `{}`.`{}`", table.db, table.name),
                    detail: e.to_string(),
                }
            })?;
        }
        Ok(row)
    }
}

fn writable(table: &Table, row: Vec<Value>) -> Vec<Value> {
    row.into_iter()
        .zip(&table.columns)
        .filter(|(_, c)| !c.generated)
        .map(|(v, _)| v)
        .collect()
}

fn key_of(table: &Table, row: &[Value]) -> Vec<Value> {
    table.key.iter().map(|&i| row[i].clone()).collect()
}

fn column_list(table: &Table) -> String {
    let columns: Vec<String> = table
        .writable()
        .map(|(_, c)| quote_ident(&c.name))
        .collect();
    columns.join(", ")
}

fn row_marks(table: &Table) -> String {
    let marks: Vec<String> = table.writable().map(|(_, c)| placeholder(c)).collect();
    format!("({})", marks.join(", "))
}

/// Matches any of `keys`, values written in: `k IN (...)` for a one-column
/// key (which the optimizer turns into point lookups), OR-ed conjunctions
/// otherwise.
fn keys_in<K: AsRef<[Value]>>(table: &Table, keys: &[K]) -> String {
    let columns: Vec<&Column> = table.key_columns().collect();
    if let [column] = columns.as_slice() {
        let size: usize = keys.iter().map(|k| rendered_len(&k.as_ref()[0]) + 2).sum();
        let mut sql = String::with_capacity(size + column.name.len() + 8);
        sql.push_str(&quote_ident(&column.name));
        sql.push_str(" IN (");
        for (n, key) in keys.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            push_rendered(&mut sql, column, &key.as_ref()[0]);
        }
        sql.push(')');
        return sql;
    }
    let alternatives: Vec<String> = keys
        .iter()
        .map(|key| {
            let parts: Vec<String> = columns
                .iter()
                .zip(key.as_ref())
                .map(|(c, v)| format!("{} = {}", quote_ident(&c.name), render(c, v)))
                .collect();
            format!("({})", parts.join(" AND "))
        })
        .collect();
    alternatives.join(" OR ")
}

/// Splits rows of `width` values into statement-sized groups.
fn chunks<R: AsRef<[Value]>>(rows: Vec<R>, width: usize) -> Vec<Vec<R>> {
    let max_rows = MAX_BATCH_ROWS.min(MAX_PLACEHOLDERS / width.max(1)).max(1);
    let mut out: Vec<Vec<R>> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let size: usize = row.as_ref().iter().map(value_size).sum();
        let start_new = match out.last() {
            // Values go as text, hex for strings: twice their size.
            Some(last) => last.len() >= max_rows || bytes + size > MAX_BATCH_BYTES / 2,
            None => true,
        };
        if start_new {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = out.last_mut() {
            last.push(row);
        }
    }
    out
}

fn key_predicate(table: &Table) -> String {
    let parts: Vec<String> = table
        .key_columns()
        .map(|c| format!("{} = {}", quote_ident(&c.name), placeholder(c)))
        .collect();
    format!("({})", parts.join(" AND "))
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}
