//! A task's phases, in order: prechecks, schema sync, full sync, catch-up,
//! then the binlog. Every phase transition is a fenced write of the task
//! checkpoint on the destination, so any worker can pick the task up where
//! the last one stopped.

pub mod accounts;
pub mod full_sync;
pub mod incremental;
pub mod precheck;
pub mod schema_sync;

use crate::endpoint::Database;
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::schema_history::{self, HistoryState, Origin};
use crate::meta::Meta;
use crate::phases::full_sync::FullSync;
use crate::phases::incremental::Incremental;
use crate::progress::Progress;
use crate::source::catalog::Table;
use crate::source::position::{self, Phase, TaskCheckpoint};
use dts_common::route::Route;
use dts_common::spec::{ConflictMode, SyncMode, TaskSpec, TriggerMethod};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The lane whose checkpoint row holds the task's phase and positions.
const TASK_LANE: u32 = 0;

pub struct TaskContext {
    pub task_id: String,
    pub epoch: u64,
    pub spec: TaskSpec,
    pub progress: Arc<Progress>,
    pub cancel: CancellationToken,
    /// Verification passes users asked for (see `verify`).
    pub verify_requests: tokio::sync::watch::Receiver<u64>,
}

fn first_phase(spec: &TaskSpec) -> Phase {
    if spec.has_mode(SyncMode::Schema) {
        Phase::Schema
    } else {
        phase_after_schema(spec)
    }
}

fn phase_after_schema(spec: &TaskSpec) -> Phase {
    if spec.has_mode(SyncMode::Full) {
        Phase::Full
    } else if spec.has_mode(SyncMode::Incremental) {
        Phase::Incremental
    } else {
        Phase::Done
    }
}

fn phase_after_full(spec: &TaskSpec) -> Phase {
    if spec.has_mode(SyncMode::Incremental) {
        Phase::Catchup
    } else {
        Phase::Done
    }
}

/// Runs the task from its checkpoint until it is done, fails or is cancelled.
pub async fn run(ctx: &TaskContext) -> SyncResult<()> {
    let spec = &ctx.spec;
    // Per side: the phases' own connection; per DU, a full sync's copier
    // and chunk planner (and on the destination the deferred-index build a
    // copier starts), or the apply lane tasks (each lane has several, see
    // `sink::lanes`); then the lanes' routing catalog, one for a checkpoint
    // written meanwhile, and verification's two (a pass and the
    // incremental check).
    let du = spec.du as usize;
    let source = Database::new(Side::Source, &spec.source, 2 * du + 5)?;
    let lane_tasks = du * crate::sink::lanes::TASKS_PER_LANE;
    let destination = Database::new(
        Side::Destination,
        &spec.destination,
        lane_tasks.max(3 * du) + 5,
    )?;
    let result = run_phases(ctx, &source, &destination).await;
    source.close().await;
    destination.close().await;
    result
}

async fn run_phases(
    ctx: &TaskContext,
    source: &Database,
    destination: &Database,
) -> SyncResult<()> {
    let spec = &ctx.spec;
    ctx.progress.set_phase("precheck");
    let mut dst = destination.conn().await?;
    // Connectivity and privileges of the source are checked before we write anything.
    let source_server = position::server_id(&mut source.conn().await?, Side::Source).await?;
    let meta = Meta::new(&spec.meta_schema, &ctx.task_id, ctx.epoch, source_server);
    meta.ensure_schema(&mut dst).await?;
    let mut spare = destination.conn().await?;
    meta.claim(&mut dst, &mut spare).await?;
    drop(spare);
    let stored = meta.load_checkpoint(&mut dst, TASK_LANE).await?;
    let mut checkpoint = match stored
        .as_deref()
        .map(serde_json::from_str::<TaskCheckpoint>)
    {
        Some(Ok(checkpoint)) => checkpoint,
        _ => TaskCheckpoint {
            phase: first_phase(spec),
            copy_start: None,
            copy_end: None,
            applied: None,
            source_server_id: None,
            schema_history: None,
        },
    };
    // Tables this task created earlier are not conflicts.
    let check_conflicts = stored.is_none() && spec.conflict_mode == ConflictMode::PrecheckError;
    let mut precheck_spec = spec.clone();
    if !check_conflicts {
        precheck_spec.conflict_mode = ConflictMode::Ignore;
    }
    let route = Route::compile(spec).map_err(SyncError::InvalidSpec)?;
    // No binlog position taken yet: what is older than the first one
    // cannot be followed (an online schema change under way).
    let starting = checkpoint.applied.is_none() && checkpoint.copy_start.is_none();
    let prechecked = precheck::run(
        &precheck_spec,
        &route,
        source,
        destination,
        starting,
        precheck::Purpose::Start,
    )
    .await?;
    let mut report = prechecked.report;
    report.acknowledge(&spec.ignore_alerts);
    ctx.progress.set_precheck(report.clone());
    // Alerts are for deciding to start: a task that ran before (a restart,
    // a move to another worker) is not stopped by them.
    precheck::require(&report, stored.is_none())?;
    let tables = prechecked.tables;
    // Accounts come with the schema: checked before anything is created.
    let accounts = match checkpoint.phase {
        Phase::Schema => accounts::selected(spec, source, destination, check_conflicts).await?,
        _ => Vec::new(),
    };
    if spec.has_mode(SyncMode::Incremental) {
        check_source_server(&mut checkpoint, source, source_server, &meta, &mut dst).await?;
    }
    ctx.progress.set_error(None);
    info!(
        tables = tables.len(),
        phase = checkpoint.phase.name(),
        "prechecks passed"
    );

    loop {
        if ctx.cancel.is_cancelled() {
            return Err(SyncError::Stopped);
        }
        ctx.progress.set_phase(checkpoint.phase.name());
        match checkpoint.phase {
            Phase::Schema => {
                let mut src = source.conn().await?;
                schema_sync::run(spec, &route, &tables, &meta, &mut src, &mut dst).await?;
                accounts::migrate(&route, &accounts, &mut src, &mut dst).await?;
                checkpoint.phase = phase_after_schema(spec);
                if checkpoint.phase == Phase::Incremental {
                    let mut src = source.conn().await?;
                    checkpoint.applied = Some(position::current(&mut src).await?);
                    checkpoint.schema_history = Some(HistoryState::Building);
                }
            }
            Phase::Full => {
                if checkpoint.copy_start.is_none() && spec.has_mode(SyncMode::Incremental) {
                    let mut src = source.conn().await?;
                    checkpoint.copy_start = Some(position::current(&mut src).await?);
                    checkpoint.schema_history = Some(HistoryState::Building);
                    save(&meta, &mut dst, &checkpoint).await?;
                    ensure_history(&mut checkpoint, &tables, &meta, source, &mut dst).await?;
                }
                FullSync {
                    source,
                    destination,
                    meta: &meta,
                    tables: &tables,
                    parallelism: spec.du as usize,
                    keep_existing: spec.conflict_mode == ConflictMode::Ignore,
                    binlog: spec.full_sync_binlog,
                    // The catch-up checks DDL against them; without one,
                    // the source need not even have a binlog.
                    record_copy_ends: spec.has_mode(SyncMode::Incremental),
                    progress: &ctx.progress,
                    cancel: &ctx.cancel,
                }
                .run()
                .await?;
                if spec.triggers == TriggerMethod::AfterFull {
                    let mut src = source.conn().await?;
                    schema_sync::create_whole_database_triggers(&route, &mut src, &mut dst).await?;
                }
                if spec.has_mode(SyncMode::Incremental) {
                    let mut src = source.conn().await?;
                    checkpoint.copy_end = Some(position::current(&mut src).await?);
                }
                checkpoint.phase = phase_after_full(spec);
            }
            Phase::Catchup | Phase::Incremental => {
                let start = match (
                    &checkpoint.phase,
                    &checkpoint.copy_start,
                    &checkpoint.applied,
                    &checkpoint.copy_end,
                ) {
                    (Phase::Catchup, Some(p0), _, _) => p0.clone(),
                    (_, _, Some(applied), _) => applied.clone(),
                    // Past the catch-up, with no lane checkpoint yet (a quiet
                    // source): everything before the copy's end was committed
                    // when it left the catch-up. Starting from now would skip
                    // what was written since.
                    (_, _, None, Some(copy_end)) => copy_end.clone(),
                    _ => {
                        // Incremental only: start from now, remembered for restarts.
                        let mut src = source.conn().await?;
                        let now = position::current(&mut src).await?;
                        checkpoint.applied = Some(now.clone());
                        checkpoint.schema_history = Some(HistoryState::Building);
                        save(&meta, &mut dst, &checkpoint).await?;
                        now
                    }
                };
                ensure_history(&mut checkpoint, &tables, &meta, source, &mut dst).await?;
                let changed_keys = spec
                    .verify
                    .incremental()
                    .then(|| Arc::new(crate::verify::changed::ChangedKeys::default()));
                let incremental = Incremental {
                    source,
                    destination,
                    meta: &meta,
                    spec,
                    route: &route,
                    tables: &tables,
                    progress: &ctx.progress,
                    cancel: &ctx.cancel,
                    catchup_until: (checkpoint.phase == Phase::Catchup)
                        .then(|| checkpoint.copy_end.clone())
                        .flatten(),
                    changed_keys: changed_keys.clone(),
                };
                let from = incremental.resume_position(start).await?;
                // Leaving catch-up is recorded once, when the applier passes P1.
                let leaves_catchup = checkpoint.phase == Phase::Catchup;
                let mut caught_up = checkpoint.clone();
                caught_up.phase = Phase::Incremental;
                let meta = &meta;
                let applying = incremental.run(from, || async move {
                    if leaves_catchup {
                        let mut conn = destination.conn().await?;
                        save(meta, &mut conn, &caught_up).await?;
                    }
                    Ok(())
                });
                let mut verifying = verifier(ctx, &route, source, destination, meta, &tables, true);
                verifying.changed = changed_keys;
                let verifying = verifying.run();
                tokio::select! {
                    applied = applying => applied?,
                    verified = verifying => verified?,
                }
                return Err(SyncError::Stopped);
            }
            Phase::Done => {
                info!("task finished: nothing more to sync");
                if spec.has_mode(SyncMode::Full) {
                    // Nothing moves any more: rows are compared as they are.
                    verifier(ctx, &route, source, destination, &meta, &tables, false)
                        .run()
                        .await?;
                }
                ctx.cancel.cancelled().await;
                return Err(SyncError::Stopped);
            }
        }
        save(&meta, &mut dst, &checkpoint).await?;
    }
}

fn verifier<'a>(
    ctx: &'a TaskContext,
    route: &'a Route,
    source: &'a Database,
    destination: &'a Database,
    meta: &'a Meta,
    tables: &'a [Table],
    follows_binlog: bool,
) -> crate::verify::Verifier<'a> {
    crate::verify::Verifier {
        route,
        source,
        destination,
        meta,
        tables,
        progress: &ctx.progress,
        mode: ctx.spec.verify,
        follows_binlog,
        both_ways: ctx.spec.topology == dts_common::spec::Topology::TwoWay,
        requests: ctx.verify_requests.clone(),
        changed: None,
        cancel: &ctx.cancel,
    }
}

/// Makes the schema history ready: built from the source once the task has
/// recorded its first binlog position (`Building`), or from the destination
/// for a task begun before the history existed (none recorded).
async fn ensure_history(
    checkpoint: &mut TaskCheckpoint,
    tables: &[Table],
    meta: &Meta,
    source: &Database,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let origin = match checkpoint.schema_history {
        Some(HistoryState::Ready) => return Ok(()),
        Some(HistoryState::Building) => Origin::Source,
        None => Origin::Destination,
    };
    let mut src = source.conn().await?;
    schema_history::build(meta, tables, origin, &mut src, dst).await?;
    checkpoint.schema_history = Some(HistoryState::Ready);
    save(meta, dst, checkpoint).await
}

/// Binlog positions are only good on the server that wrote them: the first
/// run records the source's server_id, every later run checks it, so that a
/// source replaced behind the same address (a failover) fails the task rather
/// than being read from a position in another server's binlog.
async fn check_source_server(
    checkpoint: &mut TaskCheckpoint,
    source: &Database,
    found: u32,
    meta: &Meta,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    match checkpoint.source_server_id {
        Some(recorded) if recorded != found => Err(SyncError::SourceReplaced {
            address: source.address(),
            recorded,
            found,
        }),
        Some(_) => Ok(()),
        None => {
            checkpoint.source_server_id = Some(found);
            save(meta, dst, checkpoint).await
        }
    }
}

async fn save(
    meta: &Meta,
    dst: &mut mysql_async::Conn,
    checkpoint: &TaskCheckpoint,
) -> SyncResult<()> {
    let json = serde_json::to_string(checkpoint).unwrap_or_default();
    let ctx = "saving the task checkpoint";
    let mut tx = dst
        .start_transaction(Default::default())
        .await
        .on(Side::Destination, ctx)?;
    meta.check_owner(&mut tx).await?;
    meta.save_checkpoint(&mut tx, TASK_LANE, &json).await?;
    tx.commit().await.on(Side::Destination, ctx)
}
