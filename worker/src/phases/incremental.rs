//! Follows the source binlog and applies it: a reader task decodes events into
//! a bounded channel (so a transaction of any size streams through in bounded
//! memory) and the applier commits groups of source transactions with their
//! checkpoint. Until the full copy's end position the applier runs in
//! idempotent catch-up mode; from there on, strict.

use crate::endpoint::Database;
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::copy_window::CopyWindows;
use crate::meta::online_ddl::Stashed;
use crate::meta::Meta;
use crate::progress::Progress;
use crate::sink::apply::{Applier, Mode};
use crate::sink::conflict::{ConflictHandling, ConflictLog};
use crate::sink::lanes::{self, LaneCheckpoint, Lanes};
use crate::source::binlog::{self, Item, ItemChunk, Skip};
use crate::source::catalog::Table;
use crate::source::ddl::{self, DmlTarget, Statement};
use crate::source::position::{self, BinlogPosition};
use crate::transform::ddl::{DdlPlan, DdlRouter};
use crate::transform::filter::collation::SharedCollations;
use crate::transform::loop_marker::LoopGuard;
use crate::transform::rows;
use crate::transform::select::Selector;
use dts_common::conflict::ConflictRules;
use dts_common::mysql::quote_ident;
use dts_common::route::Route;
use dts_common::spec::{ApplyConsistency, ConflictMode, TaskSpec, TriggerMethod};
use mysql_async::prelude::Queryable;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::{info, warn};

/// Chunks in flight between reader and applier. Memory is bounded by the
/// reader's byte budget (see `binlog::ItemChunk`), not by this.
const CHANNEL_DEPTH: usize = 4096;
/// While the stream is busy, how long the applier waits for more before
/// committing a batch smaller than `LINGER_ROWS`.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);
const LINGER_ROWS: usize = 5_000;

/// The apply side of a run, opened before the binlog is read.
struct Sink<'r> {
    lanes: Lanes,
    ddl_router: DdlRouter<'r>,
    windows: CopyWindows,
}

pub struct Incremental<'a> {
    pub source: &'a Database,
    pub destination: &'a Database,
    pub meta: &'a Meta,
    pub spec: &'a TaskSpec,
    pub route: &'a Route,
    /// The selected tables as the prechecks found them.
    pub tables: &'a [Table],
    pub progress: &'a Progress,
    pub cancel: &'a CancellationToken,
    /// Idempotent until this position (the end of the full copy), if any.
    pub catchup_until: Option<BinlogPosition>,
    /// Where committed keys go for incremental verification, if it runs.
    pub changed_keys: Option<Arc<crate::verify::changed::ChangedKeys>>,
}

/// A statement as the source logged it: the default schema it ran in, its
/// text, and where its event ends.
#[derive(Clone, Copy)]
struct Logged<'a> {
    schema: &'a str,
    sql: &'a str,
    position: &'a BinlogPosition,
}

/// A replica server id unique to the task, far from ids people pick.
fn server_id(task_id: &str) -> u32 {
    let hash = task_id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    0x8000_0000 | (hash & 0x7fff_ffff)
}

impl Incremental<'_> {
    /// How many apply lanes: the task's DUs, fixed for the task's life (a
    /// restart must replay a batch with the same lanes).
    fn lane_count(&self) -> u32 {
        self.spec.du.max(1)
    }

    /// Every lane's checkpoint in the destination.
    async fn lane_checkpoints(&self) -> SyncResult<Vec<Option<LaneCheckpoint>>> {
        let mut conn = self.destination.conn().await?;
        let mut checkpoints = Vec::new();
        for lane in 1..=self.lane_count() {
            let stored = self.meta.load_checkpoint(&mut conn, lane).await?;
            checkpoints
                .push(stored.and_then(|json| serde_json::from_str::<LaneCheckpoint>(&json).ok()));
        }
        Ok(checkpoints)
    }

    /// Where to resume: the lowest lane checkpoint, or `start` when a lane has none.
    pub async fn resume_position(&self, start: BinlogPosition) -> SyncResult<BinlogPosition> {
        let checkpoints = self.lane_checkpoints().await?;
        if checkpoints.iter().any(Option::is_none) {
            return Ok(start);
        }
        Ok(checkpoints
            .into_iter()
            .flatten()
            .map(|c| c.position)
            .min_by(|a, b| a.order_key().cmp(&b.order_key()))
            .unwrap_or(start))
    }

    /// Applies from `start` until cancelled, failed, or (with `on_caught_up`)
    /// after passing the catch-up end; `on_caught_up` runs once at that point.
    pub async fn run<F, Fut>(&self, start: BinlogPosition, on_caught_up: F) -> SyncResult<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SyncResult<()>>,
    {
        let destination_server = {
            let mut conn = self.destination.conn().await?;
            position::server_id(&mut conn, Side::Destination).await?
        };
        // Everything the applier reads from the destination first, before
        // the dump starts: a reader decoding meanwhile would take the CPU
        // that setting up needs, and run ahead of lanes that cannot apply.
        let sink = self.open_sink(&start).await?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let reader_cancel = self.cancel.child_token();
        info!(from = %start, catchup_until = ?self.catchup_until.as_ref().map(ToString::to_string), "following the binlog");
        // Decoding runs on its own task, so it uses another core while the
        // lanes apply.
        let reader = tokio::spawn(
            binlog::read(
                self.source.clone(),
                start.clone(),
                server_id(&self.meta.task_id),
                LoopGuard {
                    destination: destination_server,
                },
                Selector::new(Arc::new(self.route.clone())),
                tx,
                reader_cancel.clone(),
            )
            .instrument(tracing::Span::current()),
        );
        // Whichever of reader and applier ends first ends the other: the
        // reader by cancellation, the applier by the closed channel.
        let reader = async {
            let read = reader.await.unwrap_or_else(|e| {
                Err(SyncError::Query {
                    side: Side::Source,
                    context: "reading the binlog".into(),
                    detail: format!("the reader task ended abnormally: {e}"),
                })
            });
            reader_cancel.cancel();
            read
        };
        let applier = async {
            let applied = self.apply(rx, sink, on_caught_up).await;
            reader_cancel.cancel();
            applied
        };
        let heartbeat = self.heartbeat(reader_cancel.clone());
        let (read, applied, beat) = tokio::join!(reader, applier, heartbeat);
        first_cause(applied, read).and(beat)
    }

    /// With `source_heartbeat`, touches a row on the source every second: its
    /// binlog transaction carries the source's clock, so latency stays true
    /// when nothing else happens. Failures are logged, never fatal.
    async fn heartbeat(&self, cancel: CancellationToken) -> SyncResult<()> {
        if !self.spec.source_heartbeat {
            return Ok(());
        }
        let table = self.meta.table("heartbeat");
        let mut warned = false;
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = ticker.tick() => {}
            }
            let beat = async {
                let mut conn = self.source.conn().await?;
                conn.query_drop(format!(
                    "CREATE DATABASE IF NOT EXISTS {}",
                    quote_ident(&self.meta.schema)
                ))
                .await
                .on(Side::Source, "writing the heartbeat")?;
                conn.query_drop(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (task_id CHAR(36) PRIMARY KEY, beat TIMESTAMP(6) NOT NULL)"
                ))
                .await
                .on(Side::Source, "writing the heartbeat")?;
                conn.exec_drop(
                    format!("REPLACE INTO {table} VALUES (?, NOW(6))"),
                    (&self.meta.task_id,),
                )
                .await
                .on(Side::Source, "writing the heartbeat")
            };
            match beat.await {
                Ok(()) => warned = false,
                Err(e) if !warned => {
                    warn!(error = %e, "source heartbeat failed; latency is measured from the last change");
                    warned = true;
                }
                Err(_) => {}
            }
        }
    }

    /// Opens the lanes as their checkpoints and the task's records in the
    /// destination say, for a run from `start`.
    async fn open_sink(&self, start: &BinlogPosition) -> SyncResult<Sink<'_>> {
        let mode = if self.caught_up(start) {
            Mode::Strict
        } else {
            Mode::Idempotent
        };
        let overwrite = self.spec.conflict_mode == ConflictMode::Ignore;
        let conflicts = Arc::new(ConflictHandling {
            rules: ConflictRules::compile(self.spec).map_err(SyncError::InvalidSpec)?,
            by_destination: self.spec.reverse_of.is_some(),
            log: {
                let mut conn = self.destination.conn().await?;
                Arc::new(ConflictLog::load(
                    crate::meta::conflicts::load(self.meta, &mut conn).await?,
                ))
            },
        });
        self.progress.set_conflict_log(conflicts.log.clone());
        let checkpoints = self.lane_checkpoints().await?;
        let mut appliers = Vec::new();
        let collations = SharedCollations::default();
        for (lane, checkpoint) in (1..=self.lane_count()).zip(checkpoints) {
            let mut lane_appliers = Vec::new();
            for _ in 0..lanes::TASKS_PER_LANE {
                let conn = self.destination.conn().await?;
                lane_appliers.push(
                    Applier::new(
                        lane,
                        conn,
                        self.meta.clone(),
                        mode,
                        overwrite,
                        conflicts.clone(),
                    )
                    .with_changed_keys(self.changed_keys.clone())
                    .with_collations(collations.clone()),
                );
            }
            appliers.push((lane_appliers, checkpoint));
        }
        // DDL the catch-up meets is checked against the tables' copy windows.
        let windows = if mode == Mode::Idempotent {
            let mut conn = self.destination.conn().await?;
            CopyWindows::load(self.meta, &mut conn).await?
        } else {
            CopyWindows::default()
        };
        let catalog_conn = self.destination.conn().await?;
        let routing = match self.spec.apply_consistency {
            ApplyConsistency::Transaction => lanes::ROUTING,
            ApplyConsistency::Row => lanes::ROW_ROUTING,
        };
        let lanes = Lanes::new(
            appliers,
            catalog_conn,
            mode,
            routing,
            self.meta.task_id.clone(),
        );
        let stashed = {
            let mut conn = self.destination.conn().await?;
            Stashed::load(self.meta, &mut conn).await?
        };
        let ddl_router = DdlRouter::new(self.route, self.tables, &self.meta.task_id)
            .with_triggers(self.spec.triggers != TriggerMethod::Skip)
            .with_stashed(stashed)
            .with_ddl_applied(self.spec.reverse_of.is_none());
        Ok(Sink {
            lanes,
            ddl_router,
            windows,
        })
    }

    /// Whether `position` is at or past the end of the full copy.
    fn caught_up(&self, position: &BinlogPosition) -> bool {
        self.catchup_until
            .as_ref()
            .is_none_or(|end| end.at_or_before(position))
    }

    async fn apply<F, Fut>(
        &self,
        mut rx: mpsc::Receiver<ItemChunk>,
        sink: Sink<'_>,
        on_caught_up: F,
    ) -> SyncResult<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SyncResult<()>>,
    {
        let Sink {
            mut lanes,
            mut ddl_router,
            windows,
        } = sink;
        let mode = lanes.mode();
        let mut on_caught_up = Some(on_caught_up);
        if mode == Mode::Strict {
            if let Some(hook) = on_caught_up.take() {
                hook().await?;
            }
        }
        let mut first_statement = true;
        let mut last_timestamp = 0u32;
        self.progress.set_phase(if mode == Mode::Strict {
            "incremental"
        } else {
            "catchup"
        });
        // Whether the last commit found more waiting when it finished: the
        // stream is busy, and a short wait for more costs no latency that
        // queueing does not already cost.
        let mut busy = false;
        // When the current batch stops waiting for more: LINGER after the
        // stream first ran dry during it, however often more then trickles in.
        let mut linger_until: Option<tokio::time::Instant> = None;
        // When the last item was the source's heartbeat: when it came.
        let mut heartbeat: Option<(i64, BinlogPosition)> = None;
        loop {
            let items = match rx.try_recv() {
                Ok(items) => items,
                Err(TryRecvError::Disconnected) => return Err(SyncError::Stopped),
                Err(TryRecvError::Empty) => {
                    let lingered = if busy && !lanes.writing() && lanes.pending_rows() < LINGER_ROWS
                    {
                        // Committing a sliver would spend the destination's
                        // CPU on commit overhead: wait briefly for more.
                        let until = *linger_until
                            .get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
                        tokio::time::timeout_at(until, rx.recv()).await.ok()
                    } else {
                        None
                    };
                    let more = match lingered {
                        Some(more) => Some(more),
                        None => {
                            self.route_while_writing(&mut rx, &mut lanes, last_timestamp)
                                .await?
                        }
                    };
                    match more {
                        Some(Some(items)) => items,
                        Some(None) => return Err(SyncError::Stopped),
                        None => {
                            // An idle task whose source moved on to another
                            // binlog file (nothing in between was for it)
                            // checkpoints there, once per file: its position
                            // must not stay in a file the source may purge.
                            if let Some((_, position)) = &heartbeat {
                                let applied = self.progress.snapshot().applied;
                                let stale = position.pos >= 4
                                    && applied.is_some_and(|a| a.file != position.file);
                                if stale && lanes.mode() == Mode::Strict && !lanes.in_transaction()
                                {
                                    lanes.skip_looped(position.clone(), true);
                                }
                            }
                            // Nothing more is ready: make what we have durable, then wait.
                            let committed = lanes.idle().await?;
                            self.committed(committed, last_timestamp, &lanes);
                            // Everything the source had at its heartbeat is
                            // now applied: the task is caught up as of then.
                            if let Some((at, position)) = heartbeat.take() {
                                self.progress.caught_up(at);
                                if position.pos >= 4 {
                                    self.progress.reach(&position);
                                }
                            }
                            linger_until = None;
                            busy = !rx.is_empty();
                            match rx.recv().await {
                                Some(items) => items,
                                None => return Err(SyncError::Stopped),
                            }
                        }
                    }
                }
            };
            // Routing never waits on I/O: between chunks, the lanes get the
            // runtime to read their replies and send their next statements,
            // so the destination is not left idle (see `lanes::Pace`).
            tokio::task::yield_now().await;
            for item in items.items {
                heartbeat = None;
                match item {
                    Item::Heartbeat { position } => {
                        heartbeat = Some((dts_common::time::now_ms(), position))
                    }
                    Item::Begin => lanes.begin_transaction(),
                    Item::Rows {
                        source,
                        route,
                        kind,
                        columns,
                        changes,
                        bytes,
                        timestamp,
                        position,
                    } => {
                        last_timestamp = timestamp;
                        if let Some(work) = rows::to_destination(
                            &source, &route, kind, columns, changes, bytes, position,
                        ) {
                            lanes.rows(work).await?;
                        }
                    }
                    Item::Origin(origin) => lanes.set_transaction_origin(origin),
                    Item::Commit {
                        position,
                        timestamp,
                        skip,
                    } => {
                        last_timestamp = timestamp;
                        let passed_catchup =
                            lanes.mode() == Mode::Idempotent && self.caught_up(&position);
                        match skip {
                            Skip::No => {
                                let committed = lanes.end_transaction(position).await?;
                                self.committed(committed, last_timestamp, &lanes);
                            }
                            // Never a batch end: a checkpoint past it
                            // would be read back as another such.
                            Skip::Own => lanes.discard_transaction(),
                            // Nothing of it applies; the task reports
                            // being past it when it goes idle.
                            Skip::Looped { data } => lanes.skip_looped(position, data),
                        }
                        if passed_catchup {
                            self.leave_catchup(&mut lanes, last_timestamp, &mut on_caught_up)
                                .await?;
                        }
                    }
                    Item::Statement {
                        schema,
                        sql,
                        position,
                        timestamp,
                    } => {
                        last_timestamp = timestamp;
                        let logged = Logged {
                            schema: &schema,
                            sql: &sql,
                            position: &position,
                        };
                        let ran = self
                            .statement(
                                &mut lanes,
                                &mut ddl_router,
                                &windows,
                                logged,
                                first_statement,
                            )
                            .await?;
                        first_statement &= !ran;
                        if !lanes.in_transaction() {
                            // A statement of its own (DDL) can be the last
                            // event before the copy's end: the catch-up ends
                            // here, not at the next transaction, whenever
                            // that comes.
                            let passed_catchup =
                                lanes.mode() == Mode::Idempotent && self.caught_up(&position);
                            self.committed(Some(position), last_timestamp, &lanes);
                            if passed_catchup {
                                self.leave_catchup(&mut lanes, last_timestamp, &mut on_caught_up)
                                    .await?;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Nothing is ready to route. While the lanes write a batch, waits for
    /// more to route or for them to land it, and hands over what was routed
    /// meanwhile as soon as they do, without waiting for it in turn. Returns
    /// what came (`None` inside when the reader ended), or `None` once the
    /// lanes have landed everything and nothing is routed: then the task is
    /// idle.
    ///
    /// A backlog's reader runs dry for moments, between its reads from the
    /// source. Going idle then would make the router wait until the lanes
    /// committed both batches in hand (routing nothing meanwhile, so the
    /// reader stops at its read-ahead budget), and the next batches would
    /// restart small: in the pinned catch-up a round's batches went 12k,
    /// then 500, 1.7k, 10k, 29k.
    async fn route_while_writing(
        &self,
        rx: &mut mpsc::Receiver<ItemChunk>,
        lanes: &mut Lanes,
        last_timestamp: u32,
    ) -> SyncResult<Option<Option<ItemChunk>>> {
        // A replayed batch keeps its cut: the idle path settles it.
        if lanes.replaying() {
            return Ok(None);
        }
        loop {
            if !lanes.writing() {
                if !lanes.has_batch() {
                    return Ok(None);
                }
                // The batch before has landed, so this returns at once.
                let committed = lanes.commit_batch().await?;
                self.committed(committed, last_timestamp, lanes);
            }
            tokio::select! {
                more = rx.recv() => return Ok(Some(more)),
                () = lanes.landed() => {}
            }
        }
    }

    /// Applies a statement if it is DDL the task follows; returns whether it ran.
    async fn statement(
        &self,
        lanes: &mut Lanes,
        ddl_router: &mut DdlRouter<'_>,
        windows: &CopyWindows,
        logged: Logged<'_>,
        first: bool,
    ) -> SyncResult<bool> {
        let Logged {
            schema,
            sql,
            position,
        } = logged;
        let classified = ddl::classify(sql);
        if let Statement::Dml {
            verb,
            qualifiers,
            target,
        } = &classified
        {
            // Its rows are not in the binlog: there is nothing to apply,
            // and skipping it would lose its change. Where its text names
            // the one table it writes, that table's database decides;
            // otherwise any selected database it names (or runs in) fails
            // the task.
            let touches_selection = match target {
                DmlTarget::Table { db: Some(db) } => self.route.selects_database(db),
                DmlTarget::Table { db: None } => self.route.selects_database(schema),
                DmlTarget::Unknown => {
                    self.route.selects_database(schema)
                        || qualifiers.iter().any(|q| self.route.selects_database(q))
                }
            };
            if touches_selection {
                return Err(SyncError::StatementLoggedDml {
                    verb: verb.clone(),
                    statement: sql.chars().take(120).collect(),
                    position: position.to_string(),
                });
            }
        }
        if lanes.in_transaction() && !matches!(classified, Statement::Ddl { .. }) {
            self.within_transaction(lanes, &classified, logged).await?;
            return Ok(false);
        }
        let plan = match classified {
            Statement::Ignored | Statement::Dml { .. } | Statement::XaEnd => DdlPlan::Ignore,
            Statement::Ddl { kind, objects } => {
                let planned = windows
                    .check(kind, &objects, schema, position, sql)
                    .and_then(|()| {
                        ddl_router.plan(kind, &objects, schema, sql, &position.to_string())
                    });
                match planned {
                    Ok(plan) => plan,
                    Err(error) => {
                        // The task stops before the statement, with all
                        // before it applied.
                        if let Ok(Some(committed)) = lanes.commit_all().await {
                            self.committed(Some(committed), 0, lanes);
                        }
                        return Err(error);
                    }
                }
            }
            Statement::Unsupported(_) => {
                if self.route.selects_database(schema) || schema.is_empty() {
                    let statement = shown(sql);
                    warn!(%statement, schema, "skipping unsupported DDL");
                    self.progress.ddl_skipped(&statement);
                }
                DdlPlan::Ignore
            }
        };
        if let DdlPlan::Follow {
            merged, left_out, ..
        } = &plan
        {
            let head = shown(sql);
            if let Some(target) = merged {
                warn!(statement = %head, %target, "not applying DDL to a merged table");
                self.progress
                    .ddl_skipped(&format!("{head} (merged table {target})"));
            } else if let Some(reason) = left_out {
                info!(statement = %head, reason, "not applying DDL the task leaves out");
                self.progress.ddl_skipped(&format!("{head} ({reason})"));
            }
        }
        let work = plan.work();
        if work.is_empty() {
            lanes.begin_transaction();
            let committed = lanes.end_transaction(position.clone()).await?;
            self.committed(committed, 0, lanes);
            return Ok(false);
        }
        let destination = match &plan {
            DdlPlan::Follow { destination, .. } => destination.clone(),
            DdlPlan::Ignore => Vec::new(),
        };
        for run in &destination {
            info!(sql = %run.sql.chars().take(200).collect::<String>(), "applying DDL");
        }
        if lanes.execute_ddl(work, position, first).await? && !destination.is_empty() {
            self.progress.ddl_applied();
        }
        lanes.after_statement(position.clone(), true).await?;
        Ok(true)
    }

    /// Past the end of the full copy: what was applied is committed, apply
    /// is strict from here on, and `on_caught_up` runs (once).
    async fn leave_catchup<F, Fut>(
        &self,
        lanes: &mut Lanes,
        timestamp: u32,
        on_caught_up: &mut Option<F>,
    ) -> SyncResult<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SyncResult<()>>,
    {
        let committed = lanes.commit_all().await?;
        self.committed(committed, timestamp, lanes);
        lanes.set_mode(Mode::Strict);
        self.progress.set_phase("incremental");
        info!("caught up with the end of the full copy; applying in strict mode");
        if let Some(hook) = on_caught_up.take() {
            hook().await?;
        }
        Ok(())
    }

    /// A statement inside a source transaction (SAVEPOINT, XA END, another
    /// database's statement-logged DML) belongs to it and must not end it;
    /// only a ROLLBACK does, with nothing of it applied.
    async fn within_transaction(
        &self,
        lanes: &mut Lanes,
        classified: &Statement,
        logged: Logged<'_>,
    ) -> SyncResult<()> {
        match classified {
            Statement::XaEnd => {
                if let Some((db, table)) = lanes.changed_in_transaction() {
                    return Err(SyncError::TwoPhaseXa {
                        db: db.to_string(),
                        table: table.to_string(),
                        position: logged.position.to_string(),
                    });
                }
            }
            _ if logged.sql.trim().eq_ignore_ascii_case("ROLLBACK") => {
                lanes.begin_transaction();
                let committed = lanes.end_transaction(logged.position.clone()).await?;
                self.committed(committed, 0, lanes);
            }
            _ => {}
        }
        Ok(())
    }

    fn committed(&self, position: Option<BinlogPosition>, timestamp: u32, lanes: &Lanes) {
        if let Some(position) = position {
            self.progress
                .applied(position, timestamp, lanes.rows_applied());
        }
    }
}

/// A statement as `ddl skipped` and the log show it: whole, unless it is
/// longer than [`SHOWN_CHARS`] (a routine's body, say), where it is cut and
/// says by how much; every task report carries the list.
fn shown(sql: &str) -> String {
    let sql = sql.trim();
    let length = sql.chars().count();
    if length <= SHOWN_CHARS {
        return sql.to_string();
    }
    let head: String = sql.chars().take(SHOWN_CHARS).collect();
    format!("{head}... ({} more characters)", length - SHOWN_CHARS)
}

const SHOWN_CHARS: usize = 1_000;

/// The error that ended the run. A reader that fails closes the channel, and
/// the applier then reports only that it was stopped: the reader's error is
/// the cause (a purged position must fail the task, not stop it silently).
fn first_cause(applied: SyncResult<()>, read: SyncResult<()>) -> SyncResult<()> {
    match (applied, read) {
        (Err(SyncError::Stopped), Err(cause)) => Err(cause),
        (Err(cause), _) => Err(cause),
        // The applier finished: the reader stopped because it was told to.
        (Ok(()), Err(SyncError::Stopped)) => Ok(()),
        (Ok(()), read) => read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_error_beats_the_stop_it_caused() {
        let purged = || SyncError::BinlogPurged {
            position: "binlog.000001:4".into(),
            detail: "gone".into(),
        };
        let stopped = || Err(SyncError::Stopped);
        assert!(matches!(
            first_cause(stopped(), Err(purged())),
            Err(SyncError::BinlogPurged { .. })
        ));
        assert!(matches!(
            first_cause(Err(purged()), stopped()),
            Err(SyncError::BinlogPurged { .. })
        ));
        assert!(matches!(
            first_cause(stopped(), stopped()),
            Err(SyncError::Stopped)
        ));
        assert!(first_cause(Ok(()), stopped()).is_ok());
        assert!(matches!(
            first_cause(Ok(()), Err(purged())),
            Err(SyncError::BinlogPurged { .. })
        ));
    }

    #[test]
    fn skipped_statements_are_shown_whole_up_to_a_bound() {
        assert_eq!(
            shown(" DROP DATABASE IF EXISTS r1 "),
            "DROP DATABASE IF EXISTS r1"
        );
        let long = format!("CREATE TRIGGER t {}", "x".repeat(2_000));
        let cut = shown(&long);
        assert!(cut.ends_with("... (1017 more characters)"), "{cut}");
    }

    #[test]
    fn server_ids_are_stable_and_high() {
        let id = server_id("1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        assert_eq!(id, server_id("1b4e28ba-2fa1-11d2-883f-0016d3cca427"));
        assert!(id >= 0x8000_0000);
    }
}
