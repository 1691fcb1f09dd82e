//! Checks that refuse to start a task that cannot work, with the reason:
//! reachability and credentials, binlog settings, keys, cascading foreign
//! keys, cascading foreign keys, what the route maps where, conflicting
//! tables.

use crate::endpoint::Database;
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::source::catalog::{self, Table, TableName};
use dts_common::online_ddl::HelperKind;
use dts_common::route::Route;
use dts_common::spec::{ConflictMode, OnlineDdlMethod, SyncMode, TaskSpec, Topology};
use mysql_async::prelude::Queryable;
use std::collections::{BTreeMap, BTreeSet};

/// Runs every check; returns the source tables the task covers.
/// `starting`: the task has not yet taken its first binlog position.
pub async fn run(
    spec: &TaskSpec,
    route: &Route,
    source: &Database,
    destination: &Database,
    starting: bool,
) -> SyncResult<Vec<Table>> {
    let mut src = source.conn().await?;
    let mut dst = destination.conn().await?;
    if spec.has_mode(SyncMode::Incremental) {
        check_binlog(&mut src).await?;
    }
    if spec.has_mode(SyncMode::Full) && !spec.full_sync_binlog {
        check_binlog_off_allowed(&mut dst).await?;
    }
    let same = same_server(&mut src, &mut dst).await?;
    if spec.topology == Topology::TwoWay {
        check_two_way(&mut src, &mut dst, &spec.meta_schema, same).await?;
    }
    let tables = catalog::load_tables(&mut src, route).await?;
    if starting && route.online_ddl() != OnlineDdlMethod::CopyShadowTables {
        check_tools_tables(&mut src, route, spec.has_mode(SyncMode::Incremental)).await?;
    }
    check_targets(&tables, same)?;
    if spec.has_mode(SyncMode::Incremental) {
        check_cascades(&mut src, &tables).await?;
    }
    if spec.has_mode(SyncMode::Schema) && spec.conflict_mode == ConflictMode::PrecheckError {
        check_conflicts(&mut dst, &tables).await?;
    }
    Ok(tables)
}

/// Online schema change tools' tables the route leaves out (see
/// `dts_common::online_ddl`), when the task starts: one whose original
/// table does not exist is a table that only looks like one, refused rather
/// than left out; with `in_progress_fails` (the task follows the binlog), a
/// shadow table means a change under way whose ALTER the task cannot see.
async fn check_tools_tables(
    src: &mut mysql_async::Conn,
    route: &Route,
    in_progress_fails: bool,
) -> SyncResult<()> {
    let ctx = "looking for online schema change tools' tables";
    let all: Vec<(String, String)> = src
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .on(Side::Source, ctx)?;
    let existing: BTreeSet<(&str, &str)> = all
        .iter()
        .map(|(db, t)| (db.as_str(), t.as_str()))
        .collect();
    for (db, name) in &all {
        if !route.selects_database(db) {
            continue;
        }
        let Some(tool) = route.helper(db, name).map_err(SyncError::RouteConflict)? else {
            continue;
        };
        let table = TableName {
            db: db.clone(),
            name: name.clone(),
        };
        let origin = TableName {
            db: db.clone(),
            name: tool.origin.clone(),
        };
        if !existing.contains(&(db.as_str(), tool.origin.as_str())) {
            return Err(SyncError::LooksLikeToolTable {
                table: table.to_string(),
                origin: origin.to_string(),
            });
        }
        if tool.kind == HelperKind::Shadow && in_progress_fails {
            return Err(SyncError::OnlineDdlInProgress {
                shadow: table.to_string(),
                table: origin.to_string(),
            });
        }
        tracing::info!(%table, %origin, "not syncing an online schema change tool's table");
    }
    Ok(())
}

/// A two-way pair tells its servers apart by server_id (the loop marker
/// names them so), and finds the marker only if the destination logs the
/// meta schema.
async fn check_two_way(
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
    meta_schema: &str,
    same_server: bool,
) -> SyncResult<()> {
    let source_id = crate::source::position::server_id(src, Side::Source).await?;
    let destination_id = crate::source::position::server_id(dst, Side::Destination).await?;
    if source_id == destination_id && !same_server {
        return Err(SyncError::SameServerId {
            server_id: source_id,
        });
    }
    let status: Option<mysql_async::Row> = dst.query_first("SHOW MASTER STATUS").await.on(
        Side::Destination,
        "checking that the destination logs the meta schema",
    )?;
    let Some(status) = status else {
        return Err(SyncError::MarkerNotLogged {
            schema: meta_schema.to_string(),
            detail: "its binary log is off".into(),
        });
    };
    let list = |i: usize| -> Vec<String> {
        let text: String = status.get(i).unwrap_or_default();
        text.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let (only, ignored) = (list(2), list(3));
    if ignored.iter().any(|db| db == meta_schema) {
        return Err(SyncError::MarkerNotLogged {
            schema: meta_schema.to_string(),
            detail: "binlog_ignore_db names it".into(),
        });
    }
    if !only.is_empty() && !only.iter().any(|db| db == meta_schema) {
        return Err(SyncError::MarkerNotLogged {
            schema: meta_schema.to_string(),
            detail: format!("binlog_do_db logs only {}", only.join(", ")),
        });
    }
    // Told now, not after the forward task's full copy, when the reverse
    // task would first look.
    let (format, row_image): (String, String) = dst
        .query_first("SELECT @@binlog_format, @@binlog_row_image")
        .await
        .on(
            Side::Destination,
            "checking the destination's binlog settings",
        )?
        .unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(SyncError::ReverseSourceBinlog(format!(
            "its binlog_format is {format}; dts needs ROW (SET GLOBAL binlog_format = 'ROW')"
        )));
    }
    if !row_image.eq_ignore_ascii_case("FULL") {
        return Err(SyncError::ReverseSourceBinlog(format!(
            "its binlog_row_image is {row_image}; dts needs FULL (SET GLOBAL binlog_row_image = 'FULL')"
        )));
    }
    Ok(())
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
    check_replica_logs_updates(src).await
}

/// A source that is itself a replica (of another primary in a dual-primary
/// pair, say) writes what it replicates to its own binlog only with
/// `log_slave_updates`: without it those changes never reach dts. Best
/// effort: a user without the right to see replication status is not
/// refused for it.
async fn check_replica_logs_updates(src: &mut mysql_async::Conn) -> SyncResult<()> {
    let ctx = "checking log_slave_updates";
    let logs: Option<String> = src
        .query_first("SELECT @@log_slave_updates")
        .await
        .on(Side::Source, ctx)?;
    if logs
        .as_deref()
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON"))
    {
        return Ok(());
    }
    for statement in ["SHOW ALL SLAVES STATUS", "SHOW REPLICA STATUS"] {
        let Ok(rows) = src.query::<mysql_async::Row, _>(statement).await else {
            continue;
        };
        if let Some(row) = rows.first() {
            let primary: Option<String> = row
                .get_opt::<String, _>("Master_Host")
                .or_else(|| row.get_opt::<String, _>("Source_Host"))
                .and_then(Result::ok);
            return Err(SyncError::ReplicaWithoutLogUpdates {
                primary: primary.unwrap_or_else(|| "its primary".into()),
            });
        }
        return Ok(());
    }
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

/// Whether source and destination are one server (the spec may name it by
/// two addresses).
async fn same_server(src: &mut mysql_async::Conn, dst: &mut mysql_async::Conn) -> SyncResult<bool> {
    const WHO: &str = "SELECT @@hostname, @@port, @@datadir";
    let ctx = "telling whether source and destination are one server";
    let source: Option<(String, u16, String)> = src.query_first(WHO).await.on(Side::Source, ctx)?;
    let destination: Option<(String, u16, String)> =
        dst.query_first(WHO).await.on(Side::Destination, ctx)?;
    Ok(source.is_some() && source == destination)
}

/// Two selected tables onto one destination table is a merge, which only a
/// [[routes]] rule asks for; on one server, no table may be synced onto
/// itself or onto another selected table.
fn check_targets(tables: &[Table], same_server: bool) -> SyncResult<()> {
    let claim = |t: &Table| {
        t.claim
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    let mut by_target: BTreeMap<&TableName, &Table> = BTreeMap::new();
    for table in tables {
        if let Some(first) = by_target.insert(&table.target, table) {
            let merge = [first, table]
                .iter()
                .all(|t| t.claim.as_ref().is_some_and(|c| c.merges()));
            if !merge {
                return Err(SyncError::TargetCollision {
                    target: table.target.to_string(),
                    first: first.source_name().to_string(),
                    second: table.source_name().to_string(),
                    first_claim: claim(first),
                    second_claim: claim(table),
                });
            }
        }
    }
    if same_server {
        let sources: BTreeSet<TableName> = tables.iter().map(Table::source_name).collect();
        for table in tables {
            if sources.contains(&table.target) {
                return Err(SyncError::OntoItself {
                    source_table: table.source_name().to_string(),
                    claim: claim(table),
                    target: table.target.to_string(),
                    what: if table.target == table.source_name() {
                        "the table itself"
                    } else {
                        "a table the task reads"
                    },
                });
            }
        }
    }
    Ok(())
}

async fn check_conflicts(dst: &mut mysql_async::Conn, tables: &[Table]) -> SyncResult<()> {
    let targets: BTreeSet<&TableName> = tables.iter().map(|t| &t.target).collect();
    for target in targets {
        let exists: Option<String> = dst
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&target.db, &target.name),
            )
            .await
            .on(Side::Destination, "checking for conflicting tables")?;
        if exists.is_some() {
            return Err(SyncError::TableConflict {
                db: target.db.clone(),
                table: target.name.clone(),
            });
        }
    }
    Ok(())
}
