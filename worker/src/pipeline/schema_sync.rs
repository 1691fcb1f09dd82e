//! Creates the task's objects on the destination from the source's own
//! definitions: databases, tables (columns, indexes, foreign keys, charset,
//! collation, generated and invisible columns), and for whole databases also
//! views, functions and procedures.

use crate::pipeline::catalog::Table;
use crate::pipeline::deferred_index;
use crate::pipeline::error::{DriverResultExt, Side, SyncResult};
use crate::pipeline::meta::Meta;
use crate::pipeline::sql_text::{guard_trigger, strip_definer};
use dts_common::mysql::{quote_ident, quote_table};
use dts_common::spec::{ObjectSelector, SyncMode, TaskSpec};
use mysql_async::prelude::Queryable;
use tracing::info;

pub async fn run(
    spec: &TaskSpec,
    tables: &[Table],
    meta: &Meta,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    for object in &spec.objects {
        create_database(object, src, dst).await?;
    }
    // The full copy adds the deferred indexes back as each table completes.
    let defer_indexes = spec.has_mode(SyncMode::Full).then_some(meta);
    for table in tables {
        create_table(table, defer_indexes, src, dst).await?;
    }
    for object in spec.objects.iter().filter(|o| o.tables.is_empty()) {
        create_views(&object.database, src, dst).await?;
        create_routines(&object.database, src, dst).await?;
        create_triggers(&object.database, src, dst).await?;
    }
    Ok(())
}

async fn create_database(
    object: &ObjectSelector,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let ctx = format!("creating database `{}`", object.database);
    let row: Option<(String, String)> = src
        .query_first(format!(
            "SHOW CREATE DATABASE {}",
            quote_ident(&object.database)
        ))
        .await
        .on(Side::Source, &ctx)?;
    let Some((_, create)) = row else {
        return Ok(());
    };
    let create = create.replacen("CREATE DATABASE ", "CREATE DATABASE IF NOT EXISTS ", 1);
    let create = create.replace("IF NOT EXISTS /*!32312 IF NOT EXISTS*/ ", "IF NOT EXISTS ");
    dst.query_drop(create).await.on(Side::Destination, &ctx)
}

/// Creates the table unless it exists (prechecks refused existing tables
/// unless conflict_mode is "ignore", in which case the existing one is kept).
/// With `defer_indexes`, its plain indexes are recorded there and left out,
/// unless the table is in a foreign-key relation.
async fn create_table(
    table: &Table,
    defer_indexes: Option<&Meta>,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let ctx = format!("creating table `{}`.`{}`", table.db, table.name);
    let exists: Option<String> = dst
        .exec_first(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.db, &table.name),
        )
        .await
        .on(Side::Destination, &ctx)?;
    if exists.is_some() {
        return Ok(());
    }
    let row: Option<(String, String)> = src
        .query_first(format!("SHOW CREATE TABLE {}", table.qualified()))
        .await
        .on(Side::Source, &ctx)?;
    let Some((_, create)) = row else {
        return Ok(());
    };
    let mut create = create.replacen("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1);
    if let Some(meta) = defer_indexes {
        if !in_foreign_key_relation(table, &create, src).await? {
            let auto_increment = table.columns.iter().find(|c| c.auto_increment);
            let (without, deferred) = deferred_index::split_plain_indexes(
                &create,
                auto_increment.map(|c| c.name.as_str()),
            );
            deferred_index::record(meta, dst, &table.db, &table.name, &deferred).await?;
            create = without;
        }
    }
    dst.query_drop(format!("USE {}", quote_ident(&table.db)))
        .await
        .on(Side::Destination, &ctx)?;
    dst.query_drop(create).await.on(Side::Destination, &ctx)?;
    info!(table = %quote_table(&table.db, &table.name), "table created on the destination");
    Ok(())
}

/// Whether the table has a foreign key or another table's foreign key refers
/// to it: its indexes may be what the constraint needs, so none is deferred.
async fn in_foreign_key_relation(
    table: &Table,
    create: &str,
    src: &mut mysql_async::Conn,
) -> SyncResult<bool> {
    if create.contains("FOREIGN KEY") {
        return Ok(true);
    }
    let referring: Option<String> = src
        .exec_first(
            "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? LIMIT 1",
            (&table.db, &table.name),
        )
        .await
        .on(
            Side::Source,
            &format!(
                "reading the foreign keys that refer to `{}`.`{}`",
                table.db, table.name
            ),
        )?;
    Ok(referring.is_some())
}

async fn create_views(
    db: &str,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let ctx = format!("creating views of `{db}`");
    let names: Vec<String> = src
        .exec(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (db,),
        )
        .await
        .on(Side::Source, &ctx)?;
    let mut pending = Vec::new();
    for name in names {
        let row: Option<(String, String, String, String)> = src
            .query_first(format!("SHOW CREATE VIEW {}", quote_table(db, &name)))
            .await
            .on(Side::Source, &ctx)?;
        if let Some((_, create, _, _)) = row {
            let create = strip_definer(&create).replacen("CREATE ", "CREATE OR REPLACE ", 1);
            pending.push((name, create));
        }
    }
    dst.query_drop(format!("USE {}", quote_ident(db)))
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
    db: &str,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let ctx = format!("creating functions and procedures of `{db}`");
    let routines: Vec<(String, String)> = src
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? \
             ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (db,),
        )
        .await
        .on(Side::Source, &ctx)?;
    dst.query_drop(format!("USE {}", quote_ident(db)))
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
                (db, &name, &kind),
            )
            .await
            .on(Side::Destination, &ctx)?;
        if exists.is_none() {
            dst.query_drop(strip_definer(&create))
                .await
                .on(Side::Destination, &ctx)?;
        }
    }
    Ok(())
}

/// Triggers, guarded so they fire for applications but not for dts's writes.
async fn create_triggers(
    db: &str,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    let ctx = format!("creating triggers of `{db}`");
    let names: Vec<String> = src
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? \
             ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
            (db,),
        )
        .await
        .on(Side::Source, &ctx)?;
    dst.query_drop(format!("USE {}", quote_ident(db)))
        .await
        .on(Side::Destination, &ctx)?;
    for name in names {
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
                (db, &name),
            )
            .await
            .on(Side::Destination, &ctx)?;
        if exists.is_some() {
            continue;
        }
        let guarded = guard_trigger(&strip_definer(&create)).ok_or_else(|| {
            crate::pipeline::error::SyncError::Query {
                side: Side::Source,
                context: ctx.clone(),
                detail: format!("cannot find the body of trigger `{name}`"),
            }
        })?;
        dst.query_drop(guarded).await.on(Side::Destination, &ctx)?;
    }
    Ok(())
}
