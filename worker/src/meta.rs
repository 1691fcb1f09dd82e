//! The task's metadata schema on the destination (`dts_meta` by default): who
//! owns the task (the epoch fence), checkpoints, the full-sync chunk ledger,
//! the indexes deferred until a table's rows are copied, where the source
//! binlog was when each table's copy ended, online schema changes kept
//! for their cut-over, and the conflicts the task settled.
//! Rows here are written in the same transaction as the data they describe,
//! which is what makes apply exactly-once.

pub mod conflicts;
pub mod copy_window;
pub mod deferred_index;
pub mod online_ddl;
pub mod schema_history;
pub mod verify;

use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use dts_common::mysql::quote_ident;
use mysql_async::prelude::Queryable;

#[derive(Debug, Clone)]
pub struct Meta {
    pub schema: String,
    pub task_id: String,
    pub epoch: u64,
    /// The source's server id: every transaction this task writes says it
    /// came from there (see [`LOOP_MARKERS`]).
    pub applied_from: u32,
}

/// The loop marker table. Every transaction dts writes on a destination
/// writes its row here first (right after the owner check, which is a read):
/// which server the task applying it reads (`applied_from`), and the server
/// the change was first written on (`origin`, kept as a change is relayed).
/// A task reading that server's binlog sees the marker before any of the
/// transaction's rows, so it can drop the whole transaction as it streams
/// when it would carry the change back where it came from (two-way pairs,
/// stars, rings). `n` counts, so the row changes, and is logged, on every
/// write. One row per destination connection, so that parallel writers do
/// not queue on it. The reader decodes it by column position: the order of
/// the columns is part of the format.
pub const LOOP_MARKERS: &str = "loop_markers";

const CTX: &str = "preparing the metadata schema";

impl Meta {
    /// `applied_from`: the source's server id.
    pub fn new(schema: &str, task_id: &str, epoch: u64, applied_from: u32) -> Self {
        Self {
            schema: schema.to_string(),
            task_id: task_id.to_string(),
            epoch,
            applied_from,
        }
    }

    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(name))
    }

    pub async fn ensure_schema(&self, conn: &mut mysql_async::Conn) -> SyncResult<()> {
        let statements = [
            format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&self.schema)),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL PRIMARY KEY, \
                 epoch BIGINT UNSIGNED NOT NULL, claimed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) \
                 ENGINE=InnoDB",
                self.table("owners")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL, lane INT NOT NULL, \
                 position TEXT NOT NULL, epoch BIGINT UNSIGNED NOT NULL, \
                 updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
                 PRIMARY KEY (task_id, lane)) ENGINE=InnoDB",
                self.table("checkpoints")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL, db VARCHAR(64) NOT NULL, \
                 tbl VARCHAR(64) NOT NULL, chunk_no INT NOT NULL, lower_bound LONGBLOB NULL, \
                 upper_bound LONGBLOB NULL, done TINYINT NOT NULL DEFAULT 0, rows_copied BIGINT NOT NULL DEFAULT 0, \
                 epoch BIGINT UNSIGNED NOT NULL DEFAULT 0, PRIMARY KEY (task_id, db, tbl, chunk_no)) ENGINE=InnoDB",
                self.table("chunks")
            ),
            // Indexes left out of tables dts created, added once their rows
            // are in (see deferred_index).
            format!(
                "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL, db VARCHAR(64) NOT NULL, \
                 tbl VARCHAR(64) NOT NULL, index_name VARCHAR(64) NOT NULL, ordinal INT NOT NULL, \
                 definition TEXT NOT NULL, PRIMARY KEY (task_id, db, tbl, index_name)) ENGINE=InnoDB",
                self.table("deferred_indexes")
            ),
            // Where the source binlog was when each table's copy ended (see
            // copy_window).
            format!(
                "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL, db VARCHAR(64) NOT NULL, \
                 tbl VARCHAR(64) NOT NULL, copy_end TEXT NOT NULL, \
                 PRIMARY KEY (task_id, db, tbl)) ENGINE=InnoDB",
                self.table("table_copies")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL, connection BIGINT UNSIGNED NOT NULL, \
                 applied_from INT UNSIGNED NOT NULL, origin INT UNSIGNED NOT NULL, n BIGINT UNSIGNED NOT NULL, \
                 PRIMARY KEY (task_id, connection)) ENGINE=InnoDB",
                self.table(LOOP_MARKERS)
            ),
            // ALTERs of online schema change tools' shadow tables, kept for
            // their cut-over (see online_ddl).
            format!(
                "CREATE TABLE IF NOT EXISTS {} (task_id CHAR(36) NOT NULL, db VARCHAR(64) NOT NULL, \
                 shadow VARCHAR(64) NOT NULL, seq INT NOT NULL, run_schema VARCHAR(64) NOT NULL, \
                 statement LONGTEXT NOT NULL, PRIMARY KEY (task_id, db, shadow, seq)) ENGINE=InnoDB",
                self.table("online_ddl")
            ),
        ];
        for sql in statements
            .into_iter()
            .chain(conflicts::schema(self))
            .chain(verify::schema(self))
        {
            conn.query_drop(sql).await.on(Side::Destination, CTX)?;
        }
        Ok(())
    }

    /// Takes ownership of the task for this epoch, unless a newer epoch has it.
    ///
    /// An older owner that is frozen or cut off can keep an apply transaction
    /// open, holding its shared lock on the owner row, for as long as it is
    /// stuck; the claim would wait for it. So while the claim waits, `spare`
    /// kills the sessions blocking it: only older owners' transactions, which
    /// the claim is about to fence off anyway.
    pub async fn claim(
        &self,
        conn: &mut mysql_async::Conn,
        spare: &mut mysql_async::Conn,
    ) -> SyncResult<()> {
        let waiter: Option<u64> = conn
            .query_first("SELECT CONNECTION_ID()")
            .await
            .on(Side::Destination, "claiming task ownership")?;
        let claim = self.claim_row(conn);
        tokio::pin!(claim);
        loop {
            tokio::select! {
                claimed = &mut claim => return claimed,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                    if let Some(waiter) = waiter {
                        self.kill_older_blockers(spare, waiter).await;
                    }
                }
            }
        }
    }

    /// Kills the sessions whose locks `waiter` waits for, unless the owner
    /// row already names a newer epoch (its sessions are never touched).
    /// Best effort: without the PROCESS privilege, or where the lock tables
    /// differ (MySQL 8), the claim just waits.
    async fn kill_older_blockers(&self, spare: &mut mysql_async::Conn, waiter: u64) {
        let committed: Result<Option<u64>, _> = spare
            .exec_first(
                format!(
                    "SELECT epoch FROM {} WHERE task_id = ?",
                    self.table("owners")
                ),
                (&self.task_id,),
            )
            .await;
        if matches!(committed, Ok(Some(epoch)) if epoch > self.epoch) {
            return;
        }
        let blockers: Result<Vec<u64>, _> = spare
            .exec(
                "SELECT DISTINCT b.trx_mysql_thread_id FROM information_schema.INNODB_LOCK_WAITS w \
                 JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
                 JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id \
                 WHERE r.trx_mysql_thread_id = ?",
                (waiter,),
            )
            .await;
        let blockers = match blockers {
            Ok(blockers) => blockers,
            Err(e) => {
                tracing::warn!(error = %e, "claim is waiting on a lock and cannot see who holds it");
                return;
            }
        };
        for session in blockers {
            tracing::warn!(
                session,
                "claim waits for a session holding the owner row (an older owner); killing it"
            );
            if let Err(e) = spare.query_drop(format!("KILL CONNECTION {session}")).await {
                tracing::warn!(session, error = %e, "could not kill the blocking session");
            }
        }
    }

    async fn claim_row(&self, conn: &mut mysql_async::Conn) -> SyncResult<()> {
        let ctx = "claiming task ownership";
        // The row exists before the locking read: FOR UPDATE on a missing
        // row takes a gap lock, and two tasks claiming on one destination
        // at once then deadlocked inserting into the gap. Epoch 0 is no
        // owner's (epochs start at 1), so it fences nobody in.
        conn.exec_drop(
            format!(
                "INSERT IGNORE INTO {} (task_id, epoch) VALUES (?, 0)",
                self.table("owners")
            ),
            (&self.task_id,),
        )
        .await
        .on(Side::Destination, ctx)?;
        let mut tx = conn
            .start_transaction(Default::default())
            .await
            .on(Side::Destination, ctx)?;
        let current: Option<u64> = tx
            .exec_first(
                format!(
                    "SELECT epoch FROM {} WHERE task_id = ? FOR UPDATE",
                    self.table("owners")
                ),
                (&self.task_id,),
            )
            .await
            .on(Side::Destination, ctx)?;
        match current {
            Some(current) if current > self.epoch => {
                return Err(SyncError::Fenced {
                    mine: self.epoch,
                    current,
                })
            }
            Some(_) => {
                tx.exec_drop(
                    format!(
                        "UPDATE {} SET epoch = ?, claimed_at = CURRENT_TIMESTAMP(6) WHERE task_id = ?",
                        self.table("owners")
                    ),
                    (self.epoch, &self.task_id),
                )
                .await
                .on(Side::Destination, ctx)?;
            }
            None => {
                tx.exec_drop(
                    format!(
                        "INSERT INTO {} (task_id, epoch) VALUES (?, ?)",
                        self.table("owners")
                    ),
                    (&self.task_id, self.epoch),
                )
                .await
                .on(Side::Destination, ctx)?;
            }
        }
        tx.commit().await.on(Side::Destination, ctx)
    }

    /// The fence and the loop marker: run first in every transaction dts
    /// writes. The shared lock makes a newer owner's claim wait for this
    /// transaction, and this transaction fail if the claim came first; then
    /// the marker says the transaction's changes were first written on the
    /// source (see [`LOOP_MARKERS`]).
    pub async fn check_owner<Q: Queryable>(&self, tx: &mut Q) -> SyncResult<()> {
        self.check_owner_relaying(tx, self.applied_from).await
    }

    /// [`Meta::check_owner`] for a transaction relaying changes first written
    /// on server `origin`.
    pub async fn check_owner_relaying<Q: Queryable>(
        &self,
        tx: &mut Q,
        origin: u32,
    ) -> SyncResult<()> {
        self.fence(tx).await?;
        tx.exec_drop(
            format!(
                "INSERT INTO {} (task_id, connection, applied_from, origin, n) \
                 VALUES (?, CONNECTION_ID(), ?, ?, 1) ON DUPLICATE KEY UPDATE \
                 applied_from = VALUES(applied_from), origin = VALUES(origin), n = n + 1",
                self.table(LOOP_MARKERS)
            ),
            (&self.task_id, self.applied_from, origin),
        )
        .await
        .on(Side::Destination, "writing the loop marker")
    }

    async fn fence<Q: Queryable>(&self, tx: &mut Q) -> SyncResult<()> {
        let current: Option<u64> = tx
            .exec_first(
                format!(
                    "SELECT epoch FROM {} WHERE task_id = ? LOCK IN SHARE MODE",
                    self.table("owners")
                ),
                (&self.task_id,),
            )
            .await
            .on(Side::Destination, "checking the owner epoch")?;
        match current {
            Some(current) if current == self.epoch => Ok(()),
            Some(current) => Err(SyncError::Fenced {
                mine: self.epoch,
                current,
            }),
            None => Err(SyncError::Fenced {
                mine: self.epoch,
                current: 0,
            }),
        }
    }

    /// Upserts the checkpoint of one apply lane inside the caller's transaction.
    pub async fn save_checkpoint<Q: Queryable>(
        &self,
        tx: &mut Q,
        lane: u32,
        position: &str,
    ) -> SyncResult<()> {
        tx.exec_drop(
            format!(
                "INSERT INTO {} (task_id, lane, position, epoch) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE position = VALUES(position), epoch = VALUES(epoch), \
                 updated_at = CURRENT_TIMESTAMP(6)",
                self.table("checkpoints")
            ),
            (&self.task_id, lane, position, self.epoch),
        )
        .await
        .on(Side::Destination, "saving the checkpoint")
    }

    pub async fn load_checkpoint(
        &self,
        conn: &mut mysql_async::Conn,
        lane: u32,
    ) -> SyncResult<Option<String>> {
        conn.exec_first(
            format!(
                "SELECT position FROM {} WHERE task_id = ? AND lane = ?",
                self.table("checkpoints")
            ),
            (&self.task_id, lane),
        )
        .await
        .on(Side::Destination, "reading the checkpoint")
    }
}
