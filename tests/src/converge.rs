//! "The sync has converged": the destination has applied everything the
//! source committed, the task is healthy, and the load's tables are equal
//! with every transaction applied exactly once.

use crate::compare::assert_same_rows;
use crate::wait::{wait_for, wait_for_every};
use crate::{MariaDb, TestCluster};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Waits until every one of the task's `lanes` apply lanes (its DU) has a
/// checkpoint on the destination at or past the source's current binlog
/// position. (Lanes commit separately: a lane still applying a big
/// transaction may have no row yet while the others are already past it.)
pub async fn wait_caught_up(
    source: &MariaDb,
    destination: &MariaDb,
    lanes: u32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut conn = source.conn().await?;
    let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await?;
    let row = row.ok_or_else(|| anyhow::anyhow!("the source has no binlog"))?;
    let (file, pos): (String, u64) = (
        row.get(0).unwrap_or_default(),
        row.get(1).unwrap_or_default(),
    );
    // One connection for every poll, opened again only if it breaks: a new
    // one per query made the destination set up two connections a poll
    // while the bench counts its CPU, and their setup delayed seeing the
    // task arrive.
    let polling = tokio::sync::Mutex::new(None::<mysql_async::Conn>);
    wait_for_every(
        &format!("the destination to apply up to {file}:{pos}"),
        timeout,
        CAUGHT_UP_POLL,
        || async {
            let mut held = polling.lock().await;
            if held.is_none() {
                *held = destination.conn().await.ok();
            }
            let Some(conn) = held.as_mut() else {
                return Ok(None);
            };
            match lowest_checkpoint(conn, lanes).await {
                Ok(Some(at)) => Ok((at >= (file.clone(), pos)).then_some(())),
                Ok(None) => Ok(None),
                Err(e) => {
                    // Reconnect next time (the destination may be restarting).
                    *held = None;
                    Err(e)
                }
            }
        },
    )
    .await
}

/// How often [`wait_caught_up`] looks: the bench times catch-ups of about a
/// second by it (and native replication's by the same period).
pub const CAUGHT_UP_POLL: Duration = Duration::from_millis(10);

/// The lowest of the `lanes` apply lanes' checkpoints on the destination,
/// once every lane has one.
async fn lowest_checkpoint(
    conn: &mut mysql_async::Conn,
    lanes: u32,
) -> anyhow::Result<Option<(String, u64)>> {
    let present: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM dts_meta.checkpoints WHERE lane >= 1")
        .await?;
    if present != Some(u64::from(lanes)) {
        return Ok(None);
    }
    let json: Option<String> = conn
        .query_first(
            "SELECT position FROM dts_meta.checkpoints WHERE lane >= 1 ORDER BY \
             JSON_VALUE(position, '$.file'), CAST(JSON_VALUE(position, '$.pos') AS UNSIGNED) LIMIT 1",
        )
        .await?;
    let Some(json) = json else { return Ok(None) };
    let applied: serde_json::Value = serde_json::from_str(&json)?;
    Ok(Some((
        applied["file"].as_str().unwrap_or_default().to_string(),
        applied["pos"].as_u64().unwrap_or(0),
    )))
}

/// The task neither failed nor reports an error.
pub async fn assert_healthy(cluster: &TestCluster, task: &str) -> anyhow::Result<()> {
    let info = cluster.task(task).await?;
    anyhow::ensure!(info.status != "failed", "task failed: {}", info.last_error);
    anyhow::ensure!(
        info.last_error.is_empty(),
        "task reports an error: {}",
        info.last_error
    );
    Ok(())
}

/// The load's tables are equal on both sides, and the counters on the
/// destination sum to the number of transactions the load committed: a lost
/// transaction makes the sum smaller, one applied twice makes it larger.
pub async fn assert_load_converged(
    source: &MariaDb,
    destination: &MariaDb,
    committed: u64,
) -> anyhow::Result<()> {
    assert_same_rows(
        source,
        destination,
        &[("load_db", "items"), ("load_db", "counters")],
    )
    .await?;
    let total = destination
        .query_value("SELECT SUM(n) FROM load_db.counters")
        .await?;
    anyhow::ensure!(
        total == Some(committed.to_string()),
        "the destination counters sum to {total:?}, but the load committed {committed} transactions"
    );
    Ok(())
}

const PAST_TIMEOUT: Duration = Duration::from_secs(120);

/// Waits until `task` reports having applied (or passed over) everything
/// its source `source` has logged by now.
pub async fn wait_task_past(
    cluster: &TestCluster,
    task: &str,
    source: &MariaDb,
) -> anyhow::Result<()> {
    let end = source.binlog_end().await?;
    let last = std::sync::Mutex::new(None);
    let reached = wait_for(
        &format!("task {task} to reach {}:{}", end.0, end.1),
        PAST_TIMEOUT,
        || async {
            let info = cluster.task(task).await?;
            anyhow::ensure!(info.status != "failed", "task failed: {}", info.last_error);
            let Some(checkpoint) = info.checkpoint else {
                return Ok(None);
            };
            let progress: serde_json::Value =
                serde_json::from_str(&checkpoint.position).unwrap_or_default();
            let applied = (
                progress["applied"]["file"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                progress["applied"]["pos"].as_u64().unwrap_or(0),
            );
            let reached = applied >= end;
            *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(applied);
            Ok(reached.then_some(()))
        },
    )
    .await;
    reached.map_err(|e| {
        let last = last.lock().map(|l| l.clone()).unwrap_or_default();
        anyhow::anyhow!("{e:#}; it reported {last:?}")
    })
}

/// Every task has passed the end of its source's binlog, and then no
/// binlog grew: no change, and no checkpoint, is being carried back and
/// forth. (Each round may add the checkpoint that passes over another
/// task's last write; a loop never stops adding.) `tasks`: each task with
/// its source.
pub async fn wait_quiet(cluster: &TestCluster, tasks: &[(&str, &MariaDb)]) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..5 {
        let mut ends = Vec::new();
        for (_, source) in tasks {
            ends.push(source.binlog_end().await?);
        }
        for (task, source) in tasks {
            wait_task_past(cluster, task, source)
                .await
                .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs()))?;
        }
        if last.as_ref() == Some(&ends) {
            return Ok(());
        }
        last = Some(ends);
    }
    anyhow::bail!("the binlogs keep growing with nobody writing: {last:?}")
}
