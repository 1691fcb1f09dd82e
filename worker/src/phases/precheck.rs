//! The checks run before a task starts, as a report: every item passed,
//! failed or raised as an alert, with the reason (see
//! `dts_common::precheck`). Reachability and credentials, binlog settings
//! and retention, privileges, keys, cascading foreign keys, what the route
//! maps where, conflicting tables, versions, and the migration assessment
//! (prefix indexes, objects that depend on objects left out, definers the
//! destination lacks). At a task's start a failed item or an alert nobody
//! acknowledged stops it; `dtsctl task precheck -f` runs them alone.

use crate::endpoint::Database;
use crate::error::{Disposition, DriverResultExt, Side, SyncError, SyncResult};
use crate::source::catalog::{self, Table, TableName};
use dts_common::online_ddl::HelperKind;
use dts_common::precheck::Report;
use dts_common::route::Route;
use dts_common::spec::{ConflictMode, OnlineDdlMethod, SyncMode, TaskSpec, Topology};
use mysql_async::prelude::Queryable;
use std::collections::{BTreeMap, BTreeSet};

mod assessment;

/// Why the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A task starts: what may heal by itself (an unreachable server) ends
    /// the run, to be retried, instead of becoming a failed item.
    Start,
    /// A report was asked for: everything is an item.
    Report,
}

/// What the checks found.
pub struct Prechecked {
    /// The source tables the task covers (none when they could not be read).
    pub tables: Vec<Table>,
    pub report: Report,
}

/// Records each check's outcome as an item.
struct Items {
    report: Report,
    purpose: Purpose,
}

impl Items {
    /// Records `result` under `name`: passed with `passed`'s text, or failed
    /// with the error's; an error that may heal ends the run at a start.
    fn record<T>(
        &mut self,
        name: &str,
        result: SyncResult<T>,
        passed: impl FnOnce(&T) -> String,
    ) -> SyncResult<Option<T>> {
        match result {
            Ok(value) => {
                self.report.pass(name, passed(&value));
                Ok(Some(value))
            }
            Err(e) if self.purpose == Purpose::Start && e.disposition() != Disposition::Fail => {
                Err(e)
            }
            Err(e) => {
                self.report.fail(name, e.to_string());
                Ok(None)
            }
        }
    }
}

/// Runs every check. `starting`: the task has not yet taken its first
/// binlog position.
pub async fn run(
    spec: &TaskSpec,
    route: &Route,
    source: &Database,
    destination: &Database,
    starting: bool,
    purpose: Purpose,
) -> SyncResult<Prechecked> {
    let mut items = Items {
        report: Report::default(),
        purpose,
    };
    let reached = |db: &Database| format!("{} as `{}`", db.address(), db.endpoint.user);
    let src = items.record("source_connection", source.conn().await, |_| {
        reached(source)
    })?;
    let dst = items.record("destination_connection", destination.conn().await, |_| {
        reached(destination)
    })?;
    let (Some(mut src), Some(mut dst)) = (src, dst) else {
        return Ok(Prechecked {
            tables: Vec::new(),
            report: items.report,
        });
    };
    let incremental = spec.has_mode(SyncMode::Incremental);
    if incremental {
        items.record("binlog", check_binlog(&mut src).await, |()| {
            "log_bin ON, binlog_format ROW, binlog_row_image FULL, binlog readable".into()
        })?;
        items.record(
            "log_slave_updates",
            check_replica_logs_updates(&mut src).await,
            |()| "the source is no replica, or logs what it replicates".into(),
        )?;
        check_retention(&mut src, spec, &mut items.report).await?;
    }
    if spec.has_mode(SyncMode::Full) && !spec.full_sync_binlog {
        items.record(
            "full_sync_binlog",
            check_binlog_off_allowed(&mut dst).await,
            |()| "the destination session may set sql_log_bin = 0".into(),
        )?;
    }
    let same = same_server(&mut src, &mut dst).await?;
    if spec.topology == Topology::TwoWay {
        items.record(
            "two_way",
            check_two_way(&mut src, &mut dst, &spec.meta_schema, same).await,
            |()| "distinct server ids; the destination logs the meta schema in ROW/FULL".into(),
        )?;
    }
    assessment::versions(&mut src, &mut dst, &mut items.report).await?;
    let tables = items
        .record(
            "objects",
            catalog::load_tables(&mut src, route).await,
            |t| {
                format!(
                    "{} tables, each with a primary or unique NOT NULL key",
                    t.len()
                )
            },
        )?
        .unwrap_or_default();
    if tables.is_empty() && items.report.failures().next().is_some() {
        return Ok(Prechecked {
            tables,
            report: items.report,
        });
    }
    if starting && route.online_ddl() != OnlineDdlMethod::CopyShadowTables {
        items.record(
            "online_ddl_tools",
            check_tools_tables(&mut src, route, incremental).await,
            |()| "no online schema change under way on the selected tables".into(),
        )?;
    }
    items.record("target_tables", check_targets(&tables, same), |()| {
        "every table has a destination table of its own (or a merge asked for)".into()
    })?;
    if incremental {
        items.record(
            "cascading_foreign_keys",
            check_cascades(&mut src, &tables).await,
            |()| "no foreign key of a selected table cascades".into(),
        )?;
    }
    if spec.has_mode(SyncMode::Schema) && spec.conflict_mode == ConflictMode::PrecheckError {
        items.record(
            "conflicting_tables",
            check_conflicts(&mut dst, &tables).await,
            |()| "the destination has none of the tables the task creates".into(),
        )?;
    }
    assessment::data_size(&mut src, &tables, &mut items.report).await?;
    assessment::index_prefixes(&mut src, &tables, &mut items.report).await?;
    if spec.has_mode(SyncMode::Schema) {
        assessment::outside_dependencies(&mut src, route, &mut items.report).await?;
        assessment::missing_definers(&mut src, &mut dst, route, &mut items.report).await?;
    }
    Ok(Prechecked {
        tables,
        report: items.report,
    })
}

/// What stops a task from starting: its failed items, then (at its first
/// start) the alerts nobody acknowledged. One failed item is told as its own
/// error.
pub fn require(report: &Report, first_start: bool) -> SyncResult<()> {
    let failures: Vec<_> = report.failures().collect();
    match failures.as_slice() {
        [] => {}
        [one] => return Err(SyncError::PrecheckFailed(one.detail.clone())),
        several => {
            let each: Vec<String> = several
                .iter()
                .map(|i| format!("{}: {}", i.name, i.detail))
                .collect();
            return Err(SyncError::PrecheckFailed(format!(
                "{} prechecks failed: {}",
                several.len(),
                each.join("; ")
            )));
        }
    }
    let alerts: Vec<_> = report.open_alerts().collect();
    if alerts.is_empty() || !first_start {
        return Ok(());
    }
    let each: Vec<String> = alerts
        .iter()
        .map(|i| format!("{}: {}", i.name, i.detail))
        .collect();
    let names: Vec<String> = alerts.iter().map(|i| format!("\"{}\"", i.name)).collect();
    Err(SyncError::PrecheckAlerts(format!(
        "{}; once reviewed, acknowledge with ignore_alerts = [{}] in the task file, or \
         dtsctl task start ID --ignore-alert {}",
        each.join("; "),
        names.join(", "),
        alerts
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(" --ignore-alert ")
    )))
}

/// The checks of `spec` alone, from where this runs (`dtsctl task precheck
/// -f`): nothing is written anywhere.
pub async fn report_for(spec: &TaskSpec) -> Report {
    let mut report = Report::default();
    let route = match Route::compile(spec) {
        Ok(route) => route,
        Err(e) => {
            report.fail("task_file", e.to_string());
            return report;
        }
    };
    let endpoints = (
        Database::new(Side::Source, &spec.source, 2),
        Database::new(Side::Destination, &spec.destination, 2),
    );
    let (source, destination) = match endpoints {
        (Ok(source), Ok(destination)) => (source, destination),
        (Err(e), _) | (_, Err(e)) => {
            report.fail("connection_settings", e.to_string());
            return report;
        }
    };
    let checked = run(spec, &route, &source, &destination, true, Purpose::Report).await;
    source.close().await;
    destination.close().await;
    let mut report = match checked {
        Ok(checked) => checked.report,
        Err(e) => {
            report.fail("prechecks", e.to_string());
            report
        }
    };
    report.acknowledge(&spec.ignore_alerts);
    report
}

/// How long the source keeps its binlogs against how long the task may
/// need them: a day for incremental sync alone, a week with a full copy
/// before it (a long copy, a stopped task). Too short is an alert.
async fn check_retention(
    src: &mut mysql_async::Conn,
    spec: &TaskSpec,
    report: &mut Report,
) -> SyncResult<()> {
    const DAY: u64 = 86_400;
    let seconds: Option<u64> = src
        .query_first("SELECT @@binlog_expire_logs_seconds")
        .await
        .ok()
        .flatten();
    let days: Option<f64> = src
        .query_first("SELECT @@expire_logs_days")
        .await
        .ok()
        .flatten();
    let kept = match (seconds, days) {
        (Some(s), _) if s > 0 => Some(s),
        (_, Some(d)) if d > 0.0 => Some((d * DAY as f64) as u64),
        (None, None) => None,
        _ => Some(0),
    };
    let needed = if spec.has_mode(SyncMode::Full) {
        7 * DAY
    } else {
        DAY
    };
    let needed_text = if needed == DAY { "a day" } else { "7 days" };
    match kept {
        None => report.alert(
            "binlog_retention",
            "the source's binlog retention cannot be read (neither binlog_expire_logs_seconds \
             nor expire_logs_days)",
        ),
        Some(0) => report.pass(
            "binlog_retention",
            "the source purges no binlog by age (only PURGE BINARY LOGS or max size does)",
        ),
        Some(kept) if kept < needed => report.alert(
            "binlog_retention",
            format!(
                "the source keeps binlogs {:.1} hours (expire_logs_days / \
                 binlog_expire_logs_seconds); a task {} needs them kept at least {needed_text}, \
                 or a long copy or a stopped task finds its position purged",
                kept as f64 / 3600.0,
                if spec.has_mode(SyncMode::Full) {
                    "with full sync"
                } else {
                    "syncing incrementally"
                }
            ),
        ),
        Some(kept) => report.pass(
            "binlog_retention",
            format!(
                "the source keeps binlogs {:.1} days",
                kept as f64 / DAY as f64
            ),
        ),
    }
    Ok(())
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
        .on(Side::Source, ctx)
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
