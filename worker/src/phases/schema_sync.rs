//! Creates the task's objects on the destination from the source's own
//! definitions, under the names the route gives them: databases, tables
//! (columns, indexes, foreign keys, charset, collation, generated and
//! invisible columns), and for whole databases also views, functions,
//! procedures and triggers.

use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::deferred_index;
use crate::meta::Meta;
use crate::source::catalog::{Table, TableName};
use crate::source::ddl::{self, Statement};
use crate::transform::sql_text::{guard_trigger, strip_definer};
use crate::transform::{columns, names};
use dts_common::mysql::{quote_ident, quote_table};
use dts_common::route::Route;
use dts_common::spec::{SyncMode, TaskSpec, TriggerMethod};
use dts_common::SpecError;
use mysql_async::prelude::Queryable;
use std::collections::BTreeSet;
use tracing::info;

pub async fn run(
    spec: &TaskSpec,
    route: &Route,
    tables: &[Table],
    meta: &Meta,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    // Each destination database once, from the first source database
    // mapped there (merged shards share one).
    let whole = whole_databases(route);
    let mut created = BTreeSet::new();
    let pairs = whole
        .iter()
        .cloned()
        .chain(tables.iter().map(|t| (t.db.clone(), t.target.db.clone())));
    for (db, to) in pairs {
        if created.insert(to.clone()) {
            create_database(&db, &to, src, dst).await?;
        }
    }
    // The full copy adds the deferred indexes back as each table completes,
    // except in tables in a foreign-key relation, whose indexes the
    // constraint may need.
    let defer_indexes = match spec.has_mode(SyncMode::Full) {
        true => Some(Deferral {
            meta,
            referenced: referenced_tables(src).await?,
        }),
        false => None,
    };
    for table in tables {
        create_table(route, table, defer_indexes.as_ref(), src, dst).await?;
    }
    for (db, to) in &whole {
        let names = Names { route, db, to };
        create_views(&names, src, dst).await?;
        create_routines(&names, src, dst).await?;
    }
    let with_schema = match spec.triggers {
        TriggerMethod::WithSchema => true,
        TriggerMethod::AfterFull => !spec.has_mode(SyncMode::Full),
        TriggerMethod::Skip => false,
    };
    if with_schema {
        create_whole_database_triggers(route, src, dst).await?;
    }
    Ok(())
}

/// Each database the task selects whole, and where it goes.
fn whole_databases(route: &Route) -> Vec<(String, String)> {
    route
        .named_databases()
        .filter_map(|db| route.whole_database(db).map(|to| (db.to_string(), to)))
        .collect()
}

/// The triggers of every database the task selects whole, in the database
/// it goes to; those already there are left as they are (so a restart may
/// run it again).
pub async fn create_whole_database_triggers(
    route: &Route,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    for (db, to) in &whole_databases(route) {
        create_triggers(&Names { route, db, to }, src, dst).await?;
    }
    Ok(())
}

/// A whole source database, where it goes, and the route for the names in
/// its objects' definitions.
struct Names<'a> {
    route: &'a Route,
    db: &'a str,
    to: &'a str,
}

impl Names<'_> {
    /// A definition read from the source, with its names mapped.
    fn map(&self, sql: &str) -> SyncResult<String> {
        map_names(self.route, self.db, sql)
    }
}

/// `sql`, a definition read from the source in `db`, with its names mapped.
fn map_names(route: &Route, db: &str, sql: &str) -> SyncResult<String> {
    let named = match ddl::classify(sql) {
        Statement::Ddl { objects, .. } => objects,
        _ => Vec::new(),
    };
    names::rewrite(route, db, sql, &named)
}

async fn create_database(
    db: &str,
    to: &str,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let ctx = format!("creating database `{to}`");
    let row: Option<(String, String)> = src
        .query_first(format!("SHOW CREATE DATABASE {}", quote_ident(db)))
        .await
        .on(Side::Source, &ctx)?;
    let Some((_, create)) = row else {
        return Ok(());
    };
    // Past `CREATE DATABASE <name>` come the character set and collation.
    let options = create
        .find(&quote_ident(db))
        .map(|at| &create[at + quote_ident(db).len()..])
        .unwrap_or("");
    let create = format!("CREATE DATABASE IF NOT EXISTS {}{options}", quote_ident(to));
    dst.query_drop(create).await.on(Side::Destination, &ctx)
}

/// Where deferred indexes are recorded, and the tables whose indexes stay.
struct Deferral<'a> {
    meta: &'a Meta,
    referenced: BTreeSet<TableName>,
}

/// Creates the table unless it exists (prechecks refused existing tables
/// unless conflict_mode is "ignore", in which case the existing one is kept).
/// With `defer_indexes`, its plain indexes are recorded there and left out,
/// unless the table is in a foreign-key relation.
async fn create_table(
    route: &Route,
    table: &Table,
    defer_indexes: Option<&Deferral<'_>>,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let target = &table.target;
    let ctx = format!("creating table {target}");
    let exists: Option<String> = dst
        .exec_first(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&target.db, &target.name),
        )
        .await
        .on(Side::Destination, &ctx)?;
    if exists.is_some() {
        return add_source_column(table, dst).await;
    }
    let row: Option<(String, String)> = src
        .query_first(format!("SHOW CREATE TABLE {}", table.qualified()))
        .await
        .on(Side::Source, &ctx)?;
    let Some((_, create)) = row else {
        return Ok(());
    };
    let create = create.replacen("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1);
    // Only the columns the route lets through, under their destination names.
    let mut create = columns::project_create(&create, &table.column_map).map_err(|reason| {
        SyncError::InvalidSpec(SpecError::new(
            table
                .claim
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            format!("{reason} (`{}`.`{}`)", table.db, table.name),
        ))
    })?;
    if let Some(deferral) = defer_indexes {
        let in_relation =
            create.contains("FOREIGN KEY") || deferral.referenced.contains(&table.source_name());
        if !in_relation {
            let auto_increment = table.columns.iter().position(|c| c.auto_increment);
            let (without, deferred) = deferred_index::split_plain_indexes(
                &create,
                auto_increment.map(|i| table.column_target(i)),
            );
            deferred_index::record(deferral.meta, dst, &target.db, &target.name, &deferred).await?;
            create = without;
        }
    }
    let create = map_names(route, &table.db, &create)?;
    dst.query_drop(format!("USE {}", quote_ident(&target.db)))
        .await
        .on(Side::Destination, &ctx)?;
    dst.query_drop(create).await.on(Side::Destination, &ctx)?;
    info!(source = %table.source_name(), table = %target, "table created on the destination");
    add_source_column(table, dst).await
}

/// A merge's `source_column`: added to the destination table, with the
/// primary key extended by it, in one ALTER (so a crash leaves the table
/// with both or neither); a table that has the column is left as it is.
async fn add_source_column(table: &Table, dst: &mut mysql_async::Conn) -> SyncResult<()> {
    let Some(column) = &table.source_column else {
        return Ok(());
    };
    let target = &table.target;
    let ctx = format!("adding source column `{column}` to {target}");
    let present: Option<String> = dst
        .exec_first(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             AND COLUMN_NAME = ?",
            (&target.db, &target.name, column),
        )
        .await
        .on(Side::Destination, &ctx)?;
    if present.is_some() {
        return Ok(());
    }
    let key: Vec<String> = table
        .key
        .iter()
        .map(|&i| quote_ident(table.column_target(i)))
        .chain(std::iter::once(quote_ident(column)))
        .collect();
    dst.query_drop(format!(
        "ALTER TABLE {} ADD COLUMN {} VARCHAR(129) CHARACTER SET utf8mb4 NOT NULL DEFAULT '', \
         DROP PRIMARY KEY, ADD PRIMARY KEY ({})",
        quote_table(&target.db, &target.name),
        quote_ident(column),
        key.join(", ")
    ))
    .await
    .on(Side::Destination, &ctx)?;
    Ok(())
}

/// Tables some foreign key refers to, read once: the server answers this
/// query by opening every table it has, so asking per table made schema
/// sync quadratic (2,000 tables took minutes).
async fn referenced_tables(src: &mut mysql_async::Conn) -> SyncResult<BTreeSet<TableName>> {
    let rows: Vec<(String, String)> = src
        .query(
            "SELECT DISTINCT UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME \
             FROM information_schema.REFERENTIAL_CONSTRAINTS",
        )
        .await
        .on(Side::Source, "reading which tables foreign keys refer to")?;
    Ok(rows
        .into_iter()
        .map(|(db, name)| TableName { db, name })
        .collect())
}

async fn create_views(
    names: &Names<'_>,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let (db, to) = (names.db, names.to);
    let ctx = format!("creating views of `{db}` in `{to}`");
    let view_names: Vec<String> = src
        .exec(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (db,),
        )
        .await
        .on(Side::Source, &ctx)?;
    let mut pending = Vec::new();
    for name in view_names {
        let row: Option<(String, String, String, String)> = src
            .query_first(format!("SHOW CREATE VIEW {}", quote_table(db, &name)))
            .await
            .on(Side::Source, &ctx)?;
        if let Some((_, create, _, _)) = row {
            let create = strip_definer(&create).replacen("CREATE ", "CREATE OR REPLACE ", 1);
            pending.push((name, names.map(&create)?));
        }
    }
    dst.query_drop(format!("USE {}", quote_ident(to)))
        .await
        .on(Side::Destination, &ctx)?;
    // Views may use views: retry the failures until a round makes no progress.
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        let before = pending.len();
        for (name, create) in pending {
            if let Err(e) = dst.query_drop(&create).await {
                last_error = Some(e);
                failed.push((name, create));
            }
        }
        if failed.len() == before {
            if let Some(e) = last_error {
                return Err(e).on(
                    Side::Destination,
                    &format!("{ctx} (view `{}`)", failed[0].0),
                );
            }
        }
        pending = failed;
    }
    Ok(())
}

async fn create_routines(
    names: &Names<'_>,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let (db, to) = (names.db, names.to);
    let ctx = format!("creating functions and procedures of `{db}` in `{to}`");
    let routines: Vec<(String, String)> = src
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? \
             ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (db,),
        )
        .await
        .on(Side::Source, &ctx)?;
    dst.query_drop(format!("USE {}", quote_ident(to)))
        .await
        .on(Side::Destination, &ctx)?;
    for (name, kind) in routines {
        let show = format!("SHOW CREATE {kind} {}", quote_table(db, &name));
        let row: Option<mysql_async::Row> = src.query_first(show).await.on(Side::Source, &ctx)?;
        let Some(row) = row else { continue };
        // Column 3 is the definition (NULL when the user may not see it).
        let create: Option<String> = row.get(2);
        let Some(create) = create else { continue };
        let exists: Option<String> = dst
            .exec_first(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? \
                 AND ROUTINE_NAME = ? AND ROUTINE_TYPE = ?",
                (to, &name, &kind),
            )
            .await
            .on(Side::Destination, &ctx)?;
        if exists.is_none() {
            dst.query_drop(names.map(&strip_definer(&create))?)
                .await
                .on(Side::Destination, &ctx)?;
        }
    }
    Ok(())
}

/// Triggers, guarded so they fire for applications but not for dts's writes.
async fn create_triggers(
    names: &Names<'_>,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let (db, to) = (names.db, names.to);
    let ctx = format!("creating triggers of `{db}` in `{to}`");
    let trigger_names: Vec<String> = src
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? \
             ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
            (db,),
        )
        .await
        .on(Side::Source, &ctx)?;
    dst.query_drop(format!("USE {}", quote_ident(to)))
        .await
        .on(Side::Destination, &ctx)?;
    for name in trigger_names {
        let row: Option<mysql_async::Row> = src
            .query_first(format!("SHOW CREATE TRIGGER {}", quote_table(db, &name)))
            .await
            .on(Side::Source, &ctx)?;
        let Some(create) = row.and_then(|r| r.get::<Option<String>, _>(2)).flatten() else {
            continue;
        };
        let exists: Option<String> = dst
            .exec_first(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?",
                (to, &name),
            )
            .await
            .on(Side::Destination, &ctx)?;
        if exists.is_some() {
            continue;
        }
        let guarded = guard_trigger(&names.map(&strip_definer(&create))?).ok_or_else(|| {
            crate::error::SyncError::Query {
                side: Side::Source,
                context: ctx.clone(),
                detail: format!("cannot find the body of trigger `{name}`"),
            }
        })?;
        dst.query_drop(guarded).await.on(Side::Destination, &ctx)?;
    }
    Ok(())
}
