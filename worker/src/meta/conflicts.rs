//! The conflicts a task settled (see `sink::conflict`): every one counted
//! per lane, kind and resolution, and the first ones (`conflicts.keep`)
//! recorded whole. Both are written in the apply transaction that settles
//! them, so a conflict is counted exactly once however often the task is
//! restarted, and its record says what the destination now holds.

use crate::error::{DriverResultExt, Side, SyncResult};
use crate::meta::Meta;
use crate::sink::conflict::{Record, Summary};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;

pub const CONFLICTS: &str = "conflicts";
pub const CONFLICT_COUNTS: &str = "conflict_counts";

/// The tables (see `Meta::ensure_schema`).
pub fn schema(meta: &Meta) -> [String; 2] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             task_id CHAR(36) NOT NULL, recorded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
             db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, kind VARCHAR(20) NOT NULL, \
             policy VARCHAR(16) NOT NULL, resolution VARCHAR(8) NOT NULL, record LONGTEXT NOT NULL, \
             KEY task (task_id, id)) ENGINE=InnoDB",
            meta.table(CONFLICTS)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL, lane INT NOT NULL, \
             kind VARCHAR(20) NOT NULL, resolution VARCHAR(8) NOT NULL, n BIGINT UNSIGNED NOT NULL, \
             PRIMARY KEY (task_id, lane, kind, resolution)) ENGINE=InnoDB",
            meta.table(CONFLICT_COUNTS)
        ),
    ]
}

/// Counts `records` for `lane` and records the first `keep` of them, in the
/// caller's transaction.
pub async fn save<Q: Queryable>(
    meta: &Meta,
    tx: &mut Q,
    lane: u32,
    records: &[Record],
    keep: usize,
) -> SyncResult<()> {
    let context = "recording conflicts";
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for record in records {
        *counts
            .entry((record.kind.name(), record.resolution.name()))
            .or_default() += 1;
    }
    for ((kind, resolution), n) in counts {
        tx.exec_drop(
            format!(
                "INSERT INTO {} (task_id, lane, kind, resolution, n) VALUES (?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
                meta.table(CONFLICT_COUNTS)
            ),
            (&meta.task_id, lane, kind, resolution, n),
        )
        .await
        .on(Side::Destination, context)?;
    }
    for record in records.iter().take(keep) {
        let (db, table) = record.table.split_once('.').unwrap_or(("", &record.table));
        tx.exec_drop(
            format!(
                "INSERT INTO {} (task_id, db, tbl, kind, policy, resolution, record) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                meta.table(CONFLICTS)
            ),
            (
                &meta.task_id,
                db,
                table,
                record.kind.name(),
                &record.policy,
                record.resolution.name(),
                serde_json::to_string(record).unwrap_or_default(),
            ),
        )
        .await
        .on(Side::Destination, context)?;
    }
    Ok(())
}

/// What the meta schema holds for the task: the counts, how many records,
/// and the latest records.
pub async fn load(meta: &Meta, conn: &mut mysql_async::Conn) -> SyncResult<Summary> {
    let context = "reading the conflicts settled so far";
    let counts: Vec<(String, String, u64)> = conn
        .exec(
            format!(
                "SELECT kind, resolution, CAST(SUM(n) AS UNSIGNED) FROM {} WHERE task_id = ? \
                 GROUP BY kind, resolution",
                meta.table(CONFLICT_COUNTS)
            ),
            (&meta.task_id,),
        )
        .await
        .on(Side::Destination, context)?;
    let mut summary = Summary::default();
    for (kind, resolution, n) in counts {
        summary.total += n;
        summary
            .counts
            .entry(kind)
            .or_default()
            .insert(resolution, n);
    }
    let recorded: Option<u64> = conn
        .exec_first(
            format!(
                "SELECT COUNT(*) FROM {} WHERE task_id = ?",
                meta.table(CONFLICTS)
            ),
            (&meta.task_id,),
        )
        .await
        .on(Side::Destination, context)?;
    summary.recorded = recorded.unwrap_or(0);
    let latest: Vec<String> = conn
        .exec(
            format!(
                "SELECT record FROM {} WHERE task_id = ? ORDER BY id DESC LIMIT 20",
                meta.table(CONFLICTS)
            ),
            (&meta.task_id,),
        )
        .await
        .on(Side::Destination, context)?;
    summary.recent = latest
        .iter()
        .rev()
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect();
    Ok(summary)
}
