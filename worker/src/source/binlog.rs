//! Reads the source binlog from a position and turns it into owned items for
//! the applier: transaction boundaries with their end positions, row changes
//! of the task's tables (values still in binlog form: the applier decodes them
//! with the table definition valid at that point), and DDL statements.

use crate::endpoint::Database;
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::LOOP_MARKERS;
use crate::source::catalog::TableName;
use crate::source::position::BinlogPosition;
use crate::source::row_image;
use crate::transform::loop_marker::{self, LoopGuard, Verdict};
use crate::transform::select::{Selected, Selector};
use dts_common::route::TableRoute;
use futures::{FutureExt, StreamExt};
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::debug;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Insert,
    Update,
    Delete,
}

#[derive(Debug)]
pub struct RowChange {
    pub before: Option<Vec<BinlogValue<'static>>>,
    pub after: Option<Vec<BinlogValue<'static>>>,
}

#[derive(Debug)]
pub enum Item {
    /// A source transaction begins (MariaDB GTID event, or BEGIN); its GTID
    /// travels with the commit's position.
    Begin,
    Rows {
        /// The source table.
        source: Arc<TableName>,
        /// Where the route sends the table's changes.
        route: Arc<TableRoute>,
        kind: RowKind,
        /// Columns in the row images (the table map's count).
        columns: usize,
        changes: Vec<RowChange>,
        /// Roughly the memory `changes` hold (see [`RowChange::size`]):
        /// what bounds the read-ahead and the lanes' batches.
        bytes: usize,
        timestamp: u32,
        /// End of this rows event: at or before a lane's checkpoint means that
        /// lane already committed the transaction it belongs to.
        position: BinlogPosition,
    },
    /// The open transaction relays changes first written on server `origin`
    /// (its loop marker says so; see `transform::loop_marker`).
    Origin(u32),
    /// The transaction ended; `position` is where the next one starts.
    Commit {
        position: BinlogPosition,
        timestamp: u32,
        skip: Skip,
    },
    /// The source had nothing more to send (its replication heartbeat,
    /// sent to an idle reader): everything it had logged up to `position`
    /// was read before.
    Heartbeat { position: BinlogPosition },
    /// A statement outside row events (DDL, usually); it is its own transaction.
    Statement {
        schema: String,
        sql: String,
        position: BinlogPosition,
        timestamp: u32,
    },
}

/// How often an idle source sends a heartbeat event.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// Table maps go to the row decoder, which decodes one only when it
/// differs from the one it holds (see `row_image::Decoder`).
const TABLE_MAP_EVENT: u8 = mysql_async::binlog::EventType::TABLE_MAP_EVENT as u8;
/// MariaDB's own event types, which mysql_common does not decode.
const MARIADB_GTID_EVENT: u8 = 162;
/// MariaDB GTID flag: a statement that is its own transaction (DDL), with no
/// BEGIN/XID around it.
const MARIADB_FL_STANDALONE: u8 = 1;

/// Decodes a MariaDB GTID event payload: seq_no (u64 LE), domain_id (u32 LE), flags.
pub fn mariadb_gtid(payload: &[u8], server_id: u32) -> Option<(String, bool)> {
    let seq = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?);
    let flags = *payload.get(12)?;
    Some((
        format!("{domain}-{server_id}-{seq}"),
        flags & MARIADB_FL_STANDALONE != 0,
    ))
}

/// A MySQL GTID as `source_uuid:transaction_number`.
pub fn mysql_gtid(sid: &[u8; 16], gno: u64) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}:{gno}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The meta table every dts apply transaction writes (see `meta`).
const CHECKPOINTS: &str = "checkpoints";

/// Why a transaction the reader passes on is not to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    No,
    /// It wrote a dts checkpoint, no loop marker and no selected table: an
    /// apply transaction of a version before the markers, read back where
    /// the destination is the source's own server. Committing a checkpoint
    /// past it would write another.
    Own,
    /// dts applied it from the server this task writes (see
    /// `transform::loop_marker`); its rows were not passed on. `data`: it
    /// changed more than dts's meta tables, so the task's checkpoint should
    /// pass it at some point; one that is only another task's checkpoint
    /// must never cause a write, or two tasks would answer each other's
    /// checkpoints forever.
    Looped {
        data: bool,
    },
}

/// What the reader saw of the open transaction.
#[derive(Default)]
struct Transaction {
    wrote_checkpoint: bool,
    selected_rows: bool,
    /// A rows event was seen: a loop marker must come first.
    rows_seen: bool,
    /// What its loop marker said, if it had one.
    marker: Option<Verdict>,
    /// It changed more than dts's meta tables.
    data: bool,
}

impl Transaction {
    fn skip(&self) -> Skip {
        match self.marker {
            Some(Verdict::Drop) => Skip::Looped { data: self.data },
            // Another dts task's bookkeeping (a checkpoint), relayed:
            // nothing to apply, and no reason to write.
            Some(Verdict::Relay { .. }) if !self.data => Skip::Looped { data: false },
            None if self.wrote_checkpoint && !self.selected_rows => Skip::Own,
            _ => Skip::No,
        }
    }
}

/// Items sent to the applier at once, at most (fewer when the stream has no
/// more ready). The reader and the router yield between chunks, and on a
/// worker with one core that is when a lane gets to read its reply and send
/// its next statement: 512 items held the lanes (and so the destination) up
/// to about a millisecond each time. 128 measured 1.12 s against 1.39 s for
/// the pinned catch-up (median of 3); 64 was no faster.
const CHUNK_ITEMS: usize = 128;
/// Row payload bytes per chunk, at most (one bigger row still goes alone).
const CHUNK_BYTES: usize = 1024 * 1024;
/// Decoded bytes the reader may run ahead of the applier: enough to keep
/// routing fed while the lanes apply (they take a batch as soon as they are
/// idle, full or not), bounded so that a huge transaction streams in bounded
/// memory. 32 MiB measured no faster in catch-up and held four times the
/// memory.
const AHEAD_BYTES: usize = 8 * 1024 * 1024;
/// What an item costs against `AHEAD_BYTES` besides its row payload.
const ITEM_BYTES: usize = 128;

/// Decoded items for the applier. Holding it holds its share of the
/// read-ahead budget, which is returned when the applier drops it.
pub struct ItemChunk {
    pub items: Vec<Item>,
    _budget: OwnedSemaphorePermit,
}

/// Items decoded and not yet sent: sent as one message when full or when
/// the stream has nothing more ready, so that the applier sees whole runs of
/// transactions and commits them together, while a quiet stream costs no
/// latency.
struct Chunk {
    out: mpsc::Sender<ItemChunk>,
    budget: Arc<Semaphore>,
    items: Vec<Item>,
    bytes: usize,
}

impl Chunk {
    async fn push(&mut self, item: Item) -> SyncResult<()> {
        self.bytes += ITEM_BYTES;
        if let Item::Rows { bytes, .. } = &item {
            self.bytes += bytes;
        }
        self.items.push(item);
        if self.items.len() >= CHUNK_ITEMS || self.bytes >= CHUNK_BYTES {
            self.send().await?;
            // Decoding a ready stream never waits: between chunks, the
            // lanes get the runtime (see `sink::lanes::Pace`).
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    async fn send(&mut self) -> SyncResult<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        // A chunk bigger than the whole budget waits for all of it.
        let cost = self.bytes.min(AHEAD_BYTES) as u32;
        self.bytes = 0;
        let budget = self
            .budget
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| SyncError::Stopped)?;
        let chunk = ItemChunk {
            // Sized for a full chunk: growing it item by item copied it
            // over and over into fresh memory.
            items: std::mem::replace(&mut self.items, Vec::with_capacity(CHUNK_ITEMS)),
            _budget: budget,
        };
        self.out.send(chunk).await.map_err(|_| SyncError::Stopped)
    }
}

impl RowChange {
    /// Roughly the memory the row images hold.
    pub fn size(&self) -> usize {
        [&self.before, &self.after]
            .into_iter()
            .flatten()
            .flatten()
            .map(|v| match v {
                BinlogValue::Value(mysql_async::Value::Bytes(b)) => b.len() + 16,
                BinlogValue::Jsonb(_) | BinlogValue::JsonDiff(_) => 256,
                _ => 16,
            })
            .sum()
    }
}

/// Streams from `start` until cancelled or the channel closes. Owns what it
/// uses, so that it can run on its own task beside the applier.
pub async fn read(
    source: Database,
    start: BinlogPosition,
    server_id: u32,
    guard: LoopGuard,
    mut selector: Selector,
    out: mpsc::Sender<ItemChunk>,
    cancel: CancellationToken,
) -> SyncResult<()> {
    let ctx = "reading the binlog";
    let start = &start;
    let mut out = Chunk {
        out,
        budget: Arc::new(Semaphore::new(AHEAD_BYTES)),
        items: Vec::new(),
        bytes: 0,
    };
    let mut conn = source.dedicated_conn().await?;
    // MariaDB sends its GTID events (and the rest of its protocol) only to
    // replicas that say they understand them.
    conn.query_drop("SET @mariadb_slave_capability = 4")
        .await
        .on(Side::Source, ctx)?;
    // An idle source then says so every HEARTBEAT, which is how the task
    // knows it is caught up (a true latency) without writing to the source.
    conn.query_drop(format!(
        "SET @master_heartbeat_period = {}",
        HEARTBEAT.as_nanos()
    ))
    .await
    .on(Side::Source, ctx)?;
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(start.file.as_bytes())
        .with_pos(start.pos);
    let mut stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(|e| purged_or(start, e))?;
    let mut file = start.file.clone();
    let mut gtid: Option<Arc<str>> = None;
    let mut transaction = Transaction::default();
    let mut decoder = row_image::Decoder::default();
    loop {
        // Take what is ready without waiting; before waiting, hand over what
        // was decoded.
        let ready = if out.items.is_empty() {
            None
        } else {
            stream.next().now_or_never()
        };
        let next = match ready {
            Some(next) => next,
            None => {
                out.send().await?;
                tokio::select! {
                    _ = cancel.cancelled() => {
                        // Closing ends the dump thread on the source now, instead of
                        // leaving it to hold binlog files open until it notices.
                        let _ = stream.close().await;
                        return Err(SyncError::Stopped);
                    }
                    next = stream.next() => next,
                }
            }
        };
        let event = match next {
            None => {
                return Err(SyncError::ConnectionLost {
                    side: Side::Source,
                    context: ctx.into(),
                    detail: "the binlog stream ended".into(),
                })
            }
            Some(Err(e)) => return Err(purged_or(start, e)),
            Some(Ok(event)) => event,
        };
        let header = event.header();
        let timestamp = header.timestamp();
        let position = |file: &Arc<str>, gtid: &Option<Arc<str>>| BinlogPosition {
            file: file.clone(),
            pos: u64::from(header.log_pos()),
            gtid: gtid.clone(),
        };
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            if let Some((id, standalone)) = mariadb_gtid(event.data(), header.server_id()) {
                gtid = Some(id.into());
                if !standalone {
                    transaction = Transaction::default();
                    out.push(Item::Begin).await?;
                }
            }
            continue;
        }
        if header.event_type_raw() == TABLE_MAP_EVENT {
            decoder
                .note_map(event.data(), || event.read_event())
                .map_err(|e| SyncError::Query {
                    side: Side::Source,
                    context: ctx.into(),
                    detail: format!("decoding a table map: {e}"),
                })?;
            continue;
        }
        let data = match event.read_data() {
            Ok(Some(data)) => data,
            // MariaDB's annotate/checkpoint/GTID-list events: nothing to apply.
            Ok(None) | Err(_) => continue,
        };
        match data {
            EventData::HeartbeatEvent => {
                out.push(Item::Heartbeat {
                    position: position(&file, &gtid),
                })
                .await?
            }
            // The first, fake rotate names the file we asked for (on MariaDB
            // with 4 checksum bytes stuck to the name): ignored.
            EventData::RotateEvent(rotate) if header.log_pos() != 0 => {
                file = rotate.name().into();
                debug!(%file, "binlog rotated");
            }
            EventData::QueryEvent(query) => {
                let sql = query.query().to_string();
                let upper = sql.trim().to_ascii_uppercase();
                match upper.as_str() {
                    "BEGIN" => {
                        transaction = Transaction::default();
                        out.push(Item::Begin).await?
                    }
                    // MySQL opens an XA transaction with XA START instead
                    // of BEGIN (MariaDB's GTID event opens both).
                    _ if upper.starts_with("XA START") || upper.starts_with("XA BEGIN") => {
                        transaction = Transaction::default();
                        out.push(Item::Begin).await?
                    }
                    // XA COMMIT and XA ROLLBACK: the outcome of an XA
                    // transaction prepared earlier, a group of its own with
                    // no XID event to end it.
                    _ if upper == "COMMIT"
                        || upper.starts_with("XA COMMIT")
                        || upper.starts_with("XA ROLLBACK") =>
                    {
                        let position = position(&file, &gtid);
                        out.push(Item::Commit {
                            position,
                            timestamp,
                            skip: transaction.skip(),
                        })
                        .await?;
                    }
                    _ => {
                        let schema = query.schema().to_string();
                        let position = position(&file, &gtid);
                        out.push(Item::Statement {
                            schema,
                            sql,
                            position,
                            timestamp,
                        })
                        .await?;
                    }
                }
            }
            // LOAD DATA logged as a statement (its file travels in the
            // Begin_load_query and Append_block events before it): passed on
            // as a statement, which the applier refuses rather than skips.
            EventData::ExecuteLoadQueryEvent(load) => {
                out.push(Item::Statement {
                    schema: load.schema().to_string(),
                    sql: load.query().to_string(),
                    position: position(&file, &gtid),
                    timestamp,
                })
                .await?;
            }
            EventData::GtidEvent(ev) => {
                // MySQL: the GTID opens the transaction (BEGIN follows).
                gtid = Some(mysql_gtid(&ev.sid(), ev.gno()).into());
            }
            EventData::XidEvent(_) => {
                let position = position(&file, &gtid);
                out.push(Item::Commit {
                    position,
                    timestamp,
                    skip: transaction.skip(),
                })
                .await?;
            }
            EventData::RowsEvent(rows) => {
                let Some(tme) = decoder.table_map(rows.table_id()) else {
                    return Err(SyncError::Query {
                        side: Side::Source,
                        context: ctx.into(),
                        detail: format!("row event for unknown table id {}", rows.table_id()),
                    });
                };
                // Borrowed: most events are passed on with no need for the names.
                let db = tme.database_name();
                let table = tme.table_name();
                let meta = db == selector.meta_schema();
                transaction.data |= !meta;
                if transaction.marker == Some(Verdict::Drop) {
                    continue;
                }
                let first = !std::mem::replace(&mut transaction.rows_seen, true);
                if meta && table == LOOP_MARKERS {
                    // Only the first rows event of a transaction is its marker.
                    let verdict = decoder
                        .decode(&rows)
                        .ok()
                        .and_then(|changes| loop_marker::read(&changes))
                        .filter(|_| first)
                        .map(|marker| guard.verdict(marker));
                    if let Some(Verdict::Relay { origin }) = verdict {
                        out.push(Item::Origin(origin)).await?;
                    }
                    transaction.marker = transaction.marker.or(verdict);
                    continue;
                }
                if meta && table == CHECKPOINTS {
                    transaction.wrote_checkpoint = true;
                }
                let Some(Selected { source, route }) = selector.select(&db, &table)? else {
                    continue;
                };
                transaction.selected_rows = true;
                let kind = match &rows {
                    RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                        RowKind::Insert
                    }
                    RowsEventData::UpdateRowsEventV1(_)
                    | RowsEventData::UpdateRowsEvent(_)
                    | RowsEventData::PartialUpdateRowsEvent(_) => RowKind::Update,
                    RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                        RowKind::Delete
                    }
                };
                if !row_image::is_full(&rows) {
                    return Err(SyncError::PartialRowImage {
                        db: db.into_owned(),
                        table: table.into_owned(),
                        position: position(&file, &gtid).to_string(),
                    });
                }
                let changes = decoder.decode(&rows).map_err(|e| SyncError::Query {
                    side: Side::Source,
                    context: format!("decoding a row of `{db}`.`{table}`"),
                    detail: e.to_string(),
                })?;
                let columns = tme.columns_count() as usize;
                let position = position(&file, &gtid);
                let bytes = changes.iter().map(RowChange::size).sum();
                out.push(Item::Rows {
                    source,
                    route,
                    kind,
                    columns,
                    changes,
                    bytes,
                    timestamp,
                    position,
                })
                .await?;
            }
            _ => {}
        }
    }
}

/// ER_MASTER_FATAL_ERROR_READING_BINLOG (1236) means the position is gone.
fn purged_or(start: &BinlogPosition, err: mysql_async::Error) -> SyncError {
    match err {
        mysql_async::Error::Server(server) if server.code == 1236 => SyncError::BinlogPurged {
            position: start.to_string(),
            detail: server.message,
        },
        mysql_async::Error::Server(server) if server.code == 1227 || server.code == 1045 => {
            SyncError::MissingPrivilege {
                side: Side::Source,
                user: String::new(),
                detail: format!(
                    "{} (dts needs REPLICATION SLAVE to read the binlog)",
                    server.message
                ),
            }
        }
        other => SyncError::from_driver(Side::Source, "reading the binlog", other),
    }
}

#[cfg(test)]
mod tests {
    use super::mariadb_gtid;

    #[test]
    fn mysql_gtid_formats_like_the_server() {
        let sid = [
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ];
        assert_eq!(
            super::mysql_gtid(&sid, 23),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
        );
    }

    #[test]
    fn mariadb_gtid_payload_decodes() {
        let mut payload = 42u64.to_le_bytes().to_vec();
        payload.extend(7u32.to_le_bytes());
        payload.push(1);
        assert_eq!(
            mariadb_gtid(&payload, 3),
            Some(("7-3-42".to_string(), true))
        );
        assert_eq!(mariadb_gtid(&payload[..10], 3), None);
    }
}
