//! Checks that refuse to start a task that cannot work, with the reason:
//! reachability and credentials, binlog settings, keys, cascading foreign
//! keys, conflicting tables.

use crate::pipeline::catalog::{self, Table};
use crate::pipeline::endpoint::Database;
use crate::pipeline::error::{DriverResultExt, Side, SyncError, SyncResult};
use dts_common::spec::{ConflictMode, SyncMode, TaskSpec};
use mysql_async::prelude::Queryable;

/// Runs every check; returns the source tables the task covers.
pub async fn run(
    spec: &TaskSpec,
    source: &Database,
    destination: &Database,
) -> SyncResult<Vec<Table>> {
    let mut src = source.conn().await?;
    let mut dst = destination.conn().await?;
    if spec.has_mode(SyncMode::Incremental) {
        check_binlog(&mut src).await?;
    }
    if spec.has_mode(SyncMode::Full) && !spec.full_sync_binlog {
        check_binlog_off_allowed(&mut dst).await?;
    }
    let tables = catalog::load_tables(&mut src, &spec.objects).await?;
    if spec.has_mode(SyncMode::Incremental) {
        check_cascades(&mut src, &tables).await?;
    }
    if spec.has_mode(SyncMode::Schema) && spec.conflict_mode == ConflictMode::PrecheckError {
        check_conflicts(&mut dst, &tables).await?;
    }
    Ok(tables)
}

async fn check_binlog(src: &mut mysql_async::Conn) -> SyncResult<()> {
    let ctx = "checking binlog settings";
    let (log_bin, format, row_image): (String, String, String) = src
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
        .await
        .on(Side::Source, ctx)?
        .unwrap_or_default();
    if log_bin != "1" && !log_bin.eq_ignore_ascii_case("ON") {
        return Err(SyncError::BinlogDisabled);
    }
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(SyncError::BinlogFormat(format));
    }
    if !row_image.eq_ignore_ascii_case("FULL") {
        return Err(SyncError::BinlogRowImage(row_image));
    }
    // Needs REPLICATION CLIENT (BINLOG MONITOR on MariaDB 10.5+).
    src.query_drop("SHOW MASTER STATUS")
        .await
        .on(Side::Source, ctx)?;
    Ok(())
}

/// `full_sync_binlog = false` needs the right to turn the binlog off for a
/// session; found out now rather than at the first chunk.
async fn check_binlog_off_allowed(dst: &mut mysql_async::Conn) -> SyncResult<()> {
    let ctx = "checking that full_sync_binlog = false may set sql_log_bin";
    match dst.query_drop("SET SESSION sql_log_bin = 0").await {
        Err(e) => Err(match SyncError::from_driver(Side::Destination, ctx, e) {
            SyncError::MissingPrivilege { side, user, detail } => SyncError::MissingPrivilege {
                side,
                user,
                detail: format!("full_sync_binlog = false sets sql_log_bin = 0: {detail}"),
            },
            other => other,
        }),
        Ok(()) => dst
            .query_drop("SET SESSION sql_log_bin = 1")
            .await
            .on(Side::Destination, ctx),
    }
}

/// What a foreign key's cascade (ON DELETE CASCADE, ON UPDATE SET NULL, ...)
/// changes in the child table is not in the source's binlog: a replica redoes
/// it through its own foreign key, while dts applies rows with foreign key
/// checks off and would leave the child rows as they were. Refused, with the
/// key named, rather than diverging.
async fn check_cascades(src: &mut mysql_async::Conn, tables: &[Table]) -> SyncResult<()> {
    const ACTS: [&str; 3] = ["CASCADE", "SET NULL", "SET DEFAULT"];
    let cascading: Vec<(String, String, String, String, String, String)> = src
        .query(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, \
             DELETE_RULE, UPDATE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE DELETE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT') \
             OR UPDATE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT') \
             ORDER BY CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME",
        )
        .await
        .on(Side::Source, "checking foreign keys for cascades")?;
    for (db, table, constraint, parent, on_delete, on_update) in cascading {
        if !tables.iter().any(|t| t.db == db && t.name == table) {
            continue;
        }
        let rule = if ACTS.contains(&on_delete.as_str()) {
            format!("ON DELETE {on_delete}")
        } else {
            format!("ON UPDATE {on_update}")
        };
        return Err(SyncError::CascadingForeignKey {
            db,
            table,
            constraint,
            parent,
            rule,
        });
    }
    Ok(())
}

async fn check_conflicts(dst: &mut mysql_async::Conn, tables: &[Table]) -> SyncResult<()> {
    for table in tables {
        let exists: Option<String> = dst
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&table.db, &table.name),
            )
            .await
            .on(Side::Destination, "checking for conflicting tables")?;
        if exists.is_some() {
            return Err(SyncError::TableConflict {
                db: table.db.clone(),
                table: table.name.clone(),
            });
        }
    }
    Ok(())
}
