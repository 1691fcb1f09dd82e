//! Follows the source binlog and applies it: a reader task decodes events into
//! a bounded channel (so a transaction of any size streams through in bounded
//! memory) and the applier commits groups of source transactions with their
//! checkpoint. Until the full copy's end position the applier runs in
//! idempotent catch-up mode; from there on, strict.

use crate::pipeline::apply::{Applier, Mode};
use crate::pipeline::binlog::{self, Item, TableFilter};
use crate::pipeline::ddl::{self, Statement};
use crate::pipeline::endpoint::Database;
use crate::pipeline::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::pipeline::lanes::{Lanes, RowsWork};
use crate::pipeline::meta::Meta;
use crate::pipeline::position::BinlogPosition;
use crate::pipeline::progress::Progress;
use dts_common::mysql::quote_ident;
use dts_common::spec::{ConflictMode, TaskSpec};
use mysql_async::prelude::Queryable;
use std::future::Future;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Items in flight between reader and applier: bounds memory on huge transactions.
const CHANNEL_DEPTH: usize = 64;

/// The objects a task covers.
pub struct Selection<'a>(pub &'a TaskSpec);

impl TableFilter for Selection<'_> {
    fn wants(&self, db: &str, table: &str) -> bool {
        self.0.objects.iter().any(|o| {
            o.database == db && (o.tables.is_empty() || o.tables.iter().any(|t| t == table))
        })
    }
}

impl Selection<'_> {
    fn wants_database(&self, db: &str) -> bool {
        self.0.objects.iter().any(|o| o.database == db)
    }
}

pub struct Incremental<'a> {
    pub source: &'a Database,
    pub destination: &'a Database,
    pub meta: &'a Meta,
    pub spec: &'a TaskSpec,
    pub progress: &'a Progress,
    pub cancel: &'a CancellationToken,
    /// Idempotent until this position (the end of the full copy), if any.
    pub catchup_until: Option<BinlogPosition>,
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
    async fn lane_checkpoints(&self) -> SyncResult<Vec<Option<BinlogPosition>>> {
        let mut conn = self.destination.conn().await?;
        let mut checkpoints = Vec::new();
        for lane in 1..=self.lane_count() {
            let stored = self.meta.load_checkpoint(&mut conn, lane).await?;
            checkpoints
                .push(stored.and_then(|json| serde_json::from_str::<BinlogPosition>(&json).ok()));
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
        let selection = Selection(self.spec);
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let reader_cancel = self.cancel.child_token();
        info!(from = %start, catchup_until = ?self.catchup_until.as_ref().map(ToString::to_string), "following the binlog");
        let reader = binlog::read(
            self.source,
            &start,
            server_id(&self.meta.task_id),
            &selection,
            tx,
            reader_cancel.clone(),
        );
        let applier = self.apply(rx, start.clone(), &selection, on_caught_up);
        let heartbeat = self.heartbeat(reader_cancel.clone());
        let result = tokio::try_join!(reader, applier, heartbeat).map(|_| ());
        reader_cancel.cancel();
        result
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

    async fn apply<F, Fut>(
        &self,
        mut rx: mpsc::Receiver<Item>,
        start: BinlogPosition,
        selection: &Selection<'_>,
        on_caught_up: F,
    ) -> SyncResult<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SyncResult<()>>,
    {
        let caught_up = |p: &BinlogPosition| {
            self.catchup_until
                .as_ref()
                .is_none_or(|end| end.at_or_before(p))
        };
        let mode = if caught_up(&start) {
            Mode::Strict
        } else {
            Mode::Idempotent
        };
        let mut on_caught_up = Some(on_caught_up);
        if mode == Mode::Strict {
            if let Some(hook) = on_caught_up.take() {
                hook().await?;
            }
        }
        let overwrite = self.spec.conflict_mode == ConflictMode::Ignore;
        let checkpoints = self.lane_checkpoints().await?;
        let mut appliers = Vec::new();
        for (lane, checkpoint) in (1..=self.lane_count()).zip(checkpoints) {
            let conn = self.destination.conn().await?;
            appliers.push((
                Applier::new(lane, conn, self.meta, mode, overwrite),
                checkpoint,
            ));
        }
        let mut lanes = Lanes::new(appliers);
        let mut first_statement = true;
        let mut last_timestamp = 0u32;
        self.progress.set_phase(if mode == Mode::Strict {
            "incremental"
        } else {
            "catchup"
        });
        loop {
            let item = match rx.try_recv() {
                Ok(item) => item,
                Err(TryRecvError::Disconnected) => return Err(SyncError::Stopped),
                Err(TryRecvError::Empty) => {
                    // Nothing more is ready: make what we have durable, then wait.
                    let committed = lanes.idle().await?;
                    self.committed(committed, last_timestamp, &lanes);
                    match rx.recv().await {
                        Some(item) => item,
                        None => return Err(SyncError::Stopped),
                    }
                }
            };
            match item {
                Item::Begin => lanes.begin_transaction(),
                Item::Rows {
                    db,
                    table,
                    kind,
                    columns,
                    changes,
                    timestamp,
                    position,
                } => {
                    last_timestamp = timestamp;
                    lanes
                        .rows(RowsWork {
                            db,
                            table,
                            kind,
                            columns,
                            changes,
                            position,
                        })
                        .await?;
                }
                Item::Commit {
                    position,
                    timestamp,
                } => {
                    last_timestamp = timestamp;
                    let passed_catchup = lanes.mode() == Mode::Idempotent && caught_up(&position);
                    let committed = lanes.end_transaction(position).await?;
                    self.committed(committed, last_timestamp, &lanes);
                    if passed_catchup {
                        let committed = lanes.commit_batch().await?;
                        self.committed(committed, last_timestamp, &lanes);
                        lanes.set_mode(Mode::Strict);
                        self.progress.set_phase("incremental");
                        info!("caught up with the end of the full copy; applying in strict mode");
                        if let Some(hook) = on_caught_up.take() {
                            hook().await?;
                        }
                    }
                }
                Item::Statement {
                    schema,
                    sql,
                    position,
                    timestamp,
                } => {
                    last_timestamp = timestamp;
                    let ran = self
                        .statement(
                            &mut lanes,
                            selection,
                            &schema,
                            &sql,
                            &position,
                            first_statement,
                        )
                        .await?;
                    first_statement &= !ran;
                    self.committed(Some(position), last_timestamp, &lanes);
                }
            }
        }
    }

    /// Applies a statement if it is DDL the task follows; returns whether it ran.
    async fn statement(
        &self,
        lanes: &mut Lanes<'_>,
        selection: &Selection<'_>,
        schema: &str,
        sql: &str,
        position: &BinlogPosition,
        first: bool,
    ) -> SyncResult<bool> {
        let relevant = match ddl::classify(sql) {
            Statement::Ignored => false,
            Statement::Ddl { kind, objects } => objects.iter().any(|o| {
                let db = o.db.as_deref().unwrap_or(schema);
                let creates_in_whole_database = matches!(
                    kind,
                    ddl::DdlKind::CreateTable
                        | ddl::DdlKind::RenameTable
                        | ddl::DdlKind::CreateView
                        | ddl::DdlKind::AlterView
                        | ddl::DdlKind::CreateFunction
                        | ddl::DdlKind::CreateProcedure
                ) && selection
                    .0
                    .objects
                    .iter()
                    .any(|s| s.database == db && s.tables.is_empty());
                selection.wants(db, &o.name) || creates_in_whole_database
            }),
            Statement::Unsupported(head) => {
                if selection.wants_database(schema) || schema.is_empty() {
                    warn!(statement = %head, schema, "skipping unsupported DDL");
                    self.progress.ddl_skipped(&head);
                }
                false
            }
        };
        if !relevant {
            lanes.begin_transaction();
            let committed = lanes.end_transaction(position.clone()).await?;
            self.committed(committed, 0, lanes);
            return Ok(false);
        }
        info!(sql = %sql.chars().take(200).collect::<String>(), "applying DDL");
        if let Some(applier) = lanes.barrier_for(position).await? {
            applier.execute_ddl(schema, sql, position, first).await?;
            self.progress.ddl_applied();
        }
        lanes.after_statement(position.clone(), true).await?;
        Ok(true)
    }

    fn committed(&self, position: Option<BinlogPosition>, timestamp: u32, lanes: &Lanes<'_>) {
        if let Some(position) = position {
            self.progress
                .applied(position, timestamp, lanes.rows_applied());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_are_stable_and_high() {
        let id = server_id("1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        assert_eq!(id, server_id("1b4e28ba-2fa1-11d2-883f-0016d3cca427"));
        assert!(id >= 0x8000_0000);
    }
}
