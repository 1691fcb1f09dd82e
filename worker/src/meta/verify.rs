//! Where data verification stands (see `verify`): the pass under way or
//! last finished, up to the last chunk compared, the incremental check's
//! counts, and the differences both found. A pass is saved after every
//! chunk, with that chunk's differences, in one fenced transaction: a worker
//! killed mid-pass leaves the next owner to go on from the chunk after,
//! counting each difference once. The incremental check is saved after
//! every batch of keys it compared.

use crate::error::{DriverResultExt, Side, SyncResult};
use crate::meta::Meta;
use crate::source::keyset::StoredValue;
use crate::verify::difference::Difference;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub const VERIFY_STATE: &str = "verify_state";
pub const VERIFY_DIFFERENCES: &str = "verify_differences";

/// Differences of a pass kept whole in the meta schema; the rest are counted.
pub const KEEP: u64 = 1000;

/// The tables (see `Meta::ensure_schema`).
pub fn schema(meta: &Meta) -> [String; 2] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL, kind VARCHAR(16) NOT NULL, \
             state LONGTEXT NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
             ON UPDATE CURRENT_TIMESTAMP(6), PRIMARY KEY (task_id, kind)) ENGINE=InnoDB",
            meta.table(VERIFY_STATE)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             task_id CHAR(36) NOT NULL, pass BIGINT UNSIGNED NOT NULL, record LONGTEXT NOT NULL, \
             KEY task (task_id, pass, id)) ENGINE=InnoDB",
            meta.table(VERIFY_DIFFERENCES)
        ),
    ]
}

/// A pass: how far it got and what it counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PassState {
    /// Numbers the task's passes (see `verify::Verifier::due`).
    pub pass: u64,
    pub finished: bool,
    /// Source tables (`db.table`) compared to the end.
    pub tables_done: BTreeSet<String>,
    /// The table under way, and the last key compared in it.
    pub current: Option<String>,
    pub after: Option<Vec<StoredValue>>,
    pub chunks: u64,
    pub rows_compared: u64,
    pub differences: u64,
    pub unsettled: u64,
    /// Differences kept in the meta schema.
    pub recorded: u64,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// Times the pass was taken up again after its runtime stopped.
    #[serde(default)]
    pub resumed: u64,
}

/// Which state row: a pass's, or the incremental check's.
const FULL: &str = "full";
const INCREMENTAL: &str = "incremental";
/// The `pass` the incremental check's differences are kept under.
pub const INCREMENTAL_PASS: u64 = 0;

/// The incremental check's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncrementalState {
    /// Changed rows compared.
    pub checked: u64,
    pub differences: u64,
    pub unsettled: u64,
    /// Changed rows not compared: more came than verification kept up with.
    pub skipped: u64,
    pub recorded: u64,
}

pub async fn load(meta: &Meta, conn: &mut mysql_async::Conn) -> SyncResult<Option<PassState>> {
    load_kind(meta, conn, FULL).await
}

pub async fn load_incremental(
    meta: &Meta,
    conn: &mut mysql_async::Conn,
) -> SyncResult<IncrementalState> {
    Ok(load_kind(meta, conn, INCREMENTAL)
        .await?
        .unwrap_or_default())
}

async fn load_kind<T: serde::de::DeserializeOwned>(
    meta: &Meta,
    conn: &mut mysql_async::Conn,
    kind: &str,
) -> SyncResult<Option<T>> {
    let state: Option<String> = conn
        .exec_first(
            format!(
                "SELECT state FROM {} WHERE task_id = ? AND kind = ?",
                meta.table(VERIFY_STATE)
            ),
            (&meta.task_id, kind),
        )
        .await
        .on(Side::Destination, "reading where verification stands")?;
    Ok(state.and_then(|json| serde_json::from_str(&json).ok()))
}

/// Saves `state` with the `found` differences of its last chunk (the first
/// of them while fewer than [`KEEP`] are kept). A new pass (`fresh`) drops
/// the differences of the ones before.
pub async fn save(
    meta: &Meta,
    conn: &mut mysql_async::Conn,
    state: &mut PassState,
    found: &[Difference],
    fresh: bool,
) -> SyncResult<()> {
    let pass = state.pass;
    let (recorded, json) = {
        let mut recorded = state.recorded;
        let kept = kept(found, &mut recorded);
        state.recorded = recorded;
        (kept, serde_json::to_string(state).unwrap_or_default())
    };
    let dropped = fresh.then_some(pass);
    write(meta, conn, FULL, &json, pass, recorded, dropped).await
}

/// Saves the incremental check's counts with the differences it just found.
pub async fn save_incremental(
    meta: &Meta,
    conn: &mut mysql_async::Conn,
    state: &mut IncrementalState,
    found: &[Difference],
) -> SyncResult<()> {
    let kept = kept(found, &mut state.recorded);
    let json = serde_json::to_string(state).unwrap_or_default();
    write(meta, conn, INCREMENTAL, &json, INCREMENTAL_PASS, kept, None).await
}

/// The differences still to keep, counting them in `recorded`.
fn kept<'a>(found: &'a [Difference], recorded: &mut u64) -> &'a [Difference] {
    let room = KEEP.saturating_sub(*recorded) as usize;
    let kept = &found[..found.len().min(room)];
    *recorded += kept.len() as u64;
    kept
}

/// One fenced transaction: the state row, the differences kept, and (for a
/// new pass) the older passes' differences dropped.
async fn write(
    meta: &Meta,
    conn: &mut mysql_async::Conn,
    kind: &str,
    json: &str,
    pass: u64,
    found: &[Difference],
    drop_before: Option<u64>,
) -> SyncResult<()> {
    let context = "saving where verification stands";
    let mut tx = conn
        .start_transaction(Default::default())
        .await
        .on(Side::Destination, context)?;
    meta.check_owner(&mut tx).await?;
    if let Some(pass) = drop_before {
        tx.exec_drop(
            format!(
                "DELETE FROM {} WHERE task_id = ? AND pass < ? AND pass <> ?",
                meta.table(VERIFY_DIFFERENCES)
            ),
            (&meta.task_id, pass, INCREMENTAL_PASS),
        )
        .await
        .on(Side::Destination, context)?;
    }
    for difference in found {
        tx.exec_drop(
            format!(
                "INSERT INTO {} (task_id, pass, record) VALUES (?, ?, ?)",
                meta.table(VERIFY_DIFFERENCES)
            ),
            (
                &meta.task_id,
                pass,
                serde_json::to_string(difference).unwrap_or_default(),
            ),
        )
        .await
        .on(Side::Destination, context)?;
    }
    tx.exec_drop(
        format!(
            "INSERT INTO {} (task_id, kind, state) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE state = VALUES(state)",
            meta.table(VERIFY_STATE)
        ),
        (&meta.task_id, kind, json),
    )
    .await
    .on(Side::Destination, context)?;
    tx.commit().await.on(Side::Destination, context)
}

/// The first `limit` differences kept for `pass`.
pub async fn differences(
    meta: &Meta,
    conn: &mut mysql_async::Conn,
    pass: u64,
    limit: u64,
) -> SyncResult<Vec<Difference>> {
    let records: Vec<String> = conn
        .exec(
            format!(
                "SELECT record FROM {} WHERE task_id = ? AND pass = ? ORDER BY id LIMIT {limit}",
                meta.table(VERIFY_DIFFERENCES)
            ),
            (&meta.task_id, pass),
        )
        .await
        .on(
            Side::Destination,
            "reading the differences verification found",
        )?;
    Ok(records
        .iter()
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect())
}
