//! Binlog positions and the task checkpoint persisted in the destination.

use crate::error::{DriverResultExt, Side, SyncResult};
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The file name and the GTID are shared, not owned: the reader labels
/// every rows event and every commit with its position, and copying both
/// strings for each was two allocations per event on the catch-up's
/// hottest path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: Arc<str>,
    pub pos: u64,
    /// MariaDB `gtid_binlog_pos` (or MySQL `gtid_executed`) at this position, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<Arc<str>>,
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if let Some(gtid) = self.gtid.as_deref().filter(|g| !g.is_empty()) {
            write!(f, " gtid {gtid}")?;
        }
        Ok(())
    }
}

impl BinlogPosition {
    /// Order within the source's binlog: file names sort in sequence, then the
    /// offset. (The GTID is a label of the position, not part of its order.)
    pub fn order_key(&self) -> (&str, u64) {
        (&self.file, self.pos)
    }

    /// `self` is at or before `other` in the binlog.
    pub fn at_or_before(&self, other: &BinlogPosition) -> bool {
        self.order_key() <= other.order_key()
    }
}

/// The source's current binlog position.
pub async fn current(conn: &mut mysql_async::Conn) -> SyncResult<BinlogPosition> {
    let ctx = "reading the source binlog position";
    let row: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .on(Side::Source, ctx)?;
    let row = row.ok_or(crate::error::SyncError::BinlogDisabled)?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or_default();
    // MariaDB first, then MySQL; a server with neither simply has no GTID.
    let mut gtid: Option<String> = conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .ok()
        .flatten();
    if gtid.is_none() {
        gtid = conn
            .query_first("SELECT @@gtid_executed")
            .await
            .ok()
            .flatten();
    }
    Ok(BinlogPosition {
        file: file.into(),
        pos,
        gtid: gtid.map(Into::into),
    })
}

/// The source's `@@server_id`: which server's binlog a position is in.
/// File names and offsets mean nothing on another server, even one that
/// replicates the same data (a replica promoted by a failover).
pub async fn server_id(conn: &mut mysql_async::Conn, side: Side) -> SyncResult<u32> {
    let id: Option<u32> = conn
        .query_first("SELECT @@server_id")
        .await
        .on(side, &format!("reading the {side}'s server_id"))?;
    Ok(id.unwrap_or_default())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Schema,
    Full,
    /// Replaying the binlog from the copy's start to its end, idempotently.
    Catchup,
    Incremental,
    /// Schema and/or full sync finished and no incremental sync was asked for.
    Done,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Schema => "schema",
            Phase::Full => "full",
            Phase::Catchup => "catchup",
            Phase::Incremental => "incremental",
            Phase::Done => "done",
        }
    }
}

/// Lane 0 of the destination checkpoints: where the task is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCheckpoint {
    pub phase: Phase,
    /// P0: taken before the full copy started; the binlog replay starts here.
    #[serde(default)]
    pub copy_start: Option<BinlogPosition>,
    /// P1: taken when the copy ended; strict apply starts after it.
    #[serde(default)]
    pub copy_end: Option<BinlogPosition>,
    /// Last binlog position applied (incremental).
    #[serde(default)]
    pub applied: Option<BinlogPosition>,
    /// `@@server_id` of the source whose binlog the positions are in.
    #[serde(default)]
    pub source_server_id: Option<u32>,
    /// Absent: a task begun before the schema history existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_history: Option<crate::meta::schema_history::HistoryState>,
}

#[cfg(test)]
mod tests {
    use super::BinlogPosition;

    fn at(file: &str, pos: u64) -> BinlogPosition {
        BinlogPosition {
            file: file.into(),
            pos,
            gtid: None,
        }
    }

    #[test]
    fn positions_order_across_files() {
        assert!(at("binlog.000001", 900).at_or_before(&at("binlog.000002", 4)));
        assert!(at("binlog.000001", 900).at_or_before(&at("binlog.000001", 900)));
        assert!(!at("binlog.000001", 900).at_or_before(&at("binlog.000001", 899)));
    }
}
