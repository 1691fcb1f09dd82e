//! The schema history: the source's table definitions as of the binlog
//! position being applied, kept on the destination server as empty shadow
//! tables, one shadow database per source database and task
//! (`dts_shadow_<hash>`).
//!
//! A row image carries values, not column names: it reads only by the
//! source's definition at that point of the binlog. Once the destination's
//! table is renamed, projected or merged, it no longer shows that
//! definition, so the shadows do. They are created from the source's own
//! SHOW CREATE TABLE when the task takes its first binlog position, and every
//! table DDL the task follows runs on them first, in binlog order, under the
//! same barrier and checkpoint as the destination's. Living on the
//! destination, they survive restarts and move with the task, like the
//! checkpoints do. (MariaDB's `binlog_row_metadata = FULL` puts column names
//! in each table map: a way to check the history, not to replace it, as the
//! server default leaves it off.)

use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::Meta;
use crate::source::catalog::{self, Table, TableName};
use crate::source::ddl::{self, Statement};
use dts_common::mysql::quote_ident;
use dts_common::route::SHADOW_PREFIX;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
// Looked up for every rows event: foldhash rather than SipHash.
use foldhash::HashMap;
use std::sync::Arc;
use tracing::info;

/// Where a task's schema history stands, in its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryState {
    /// The first position is recorded; the shadows may be partly built.
    Building,
    Ready,
}

/// The shadow database of source database `db` for this task.
pub fn shadow_database(task_id: &str, db: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in task_id.bytes().chain([0]).chain(db.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{SHADOW_PREFIX}{hash:016x}")
}

/// The shadow of source table `source`.
pub fn shadow_of(task_id: &str, source: &TableName) -> TableName {
    TableName {
        db: shadow_database(task_id, &source.db),
        name: source.name.clone(),
    }
}

/// Which definitions the shadows start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The source's, now: at the task's first binlog position.
    Source,
    /// The destination tables': a task begun before the schema history
    /// existed kept them equal to the source's as of its checkpoint, so
    /// they are that point's definitions.
    Destination,
}

/// (Re)creates the shadow of every selected table.
pub async fn build(
    meta: &Meta,
    tables: &[Table],
    origin: Origin,
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    // Foreign keys may name tables the task does not select: every session
    // has foreign_key_checks = 0 (see endpoint).
    let ctx = "building the schema history";
    for table in tables {
        let shadow = shadow_of(&meta.task_id, &table.source_name());
        let (conn, side, read) = match origin {
            Origin::Source => (&mut *src, Side::Source, table.qualified()),
            Origin::Destination => (&mut *dst, Side::Destination, table.target_qualified()),
        };
        let row: Option<(String, String)> = conn
            .query_first(format!("SHOW CREATE TABLE {read}"))
            .await
            .on(side, ctx)?;
        let Some((_, create)) = row else {
            return Err(SyncError::Internal(format!(
                "SHOW CREATE TABLE {read} returned nothing"
            )));
        };
        let create = renamed_create(&create, &shadow.name)?;
        for sql in [
            format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&shadow.db)),
            format!("USE {}", quote_ident(&shadow.db)),
            format!("DROP TABLE IF EXISTS {}", quote_ident(&shadow.name)),
            create,
        ] {
            dst.query_drop(sql).await.on(Side::Destination, ctx)?;
        }
    }
    info!(tables = tables.len(), ?origin, "schema history built");
    Ok(())
}

/// A SHOW CREATE TABLE text creating `name` instead.
fn renamed_create(create: &str, name: &str) -> SyncResult<String> {
    match ddl::classify(create) {
        Statement::Ddl { objects, .. } if !objects.is_empty() => {
            let mut out = create.to_string();
            out.replace_range(objects[0].span.clone(), &quote_ident(name));
            Ok(out)
        }
        _ => Err(SyncError::Internal(format!(
            "cannot find the table name in `{}`",
            create.chars().take(120).collect::<String>()
        ))),
    }
}

/// The source's definitions as the schema history has them, read once and
/// kept until DDL. Each is named as the source table, not its shadow.
#[derive(Default)]
pub struct SourceDefinitions {
    tables: HashMap<TableName, Arc<Table>>,
}

impl SourceDefinitions {
    pub async fn get(
        &mut self,
        conn: &mut mysql_async::Conn,
        task_id: &str,
        source: &TableName,
    ) -> SyncResult<Arc<Table>> {
        if let Some(table) = self.tables.get(source) {
            return Ok(table.clone());
        }
        let shadow = shadow_of(task_id, source);
        let mut table = catalog::load_table_from(conn, Side::Destination, &shadow.db, &shadow.name)
            .await
            .map_err(|e| match e {
                SyncError::Query { .. } => SyncError::Internal(format!(
                    "the schema history has no definition of {source} (shadow {shadow}): {e}"
                )),
                other => other,
            })?;
        table.db = source.db.clone();
        table.name = source.name.clone();
        let table = Arc::new(table);
        self.tables.insert(source.clone(), table.clone());
        Ok(table)
    }

    /// Forgets every definition (after DDL).
    pub fn clear(&mut self) {
        self.tables.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_names_are_stable_per_task_and_database_and_short() {
        let a = shadow_database("task-1", "shop");
        assert_eq!(a, shadow_database("task-1", "shop"));
        assert_ne!(a, shadow_database("task-2", "shop"));
        assert_ne!(a, shadow_database("task-1", "shop2"));
        assert!(a.starts_with(SHADOW_PREFIX) && a.len() <= 64, "{a}");
    }

    #[test]
    fn the_created_table_takes_the_new_name() -> SyncResult<()> {
        let create =
            "CREATE TABLE `orders_eu` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n)";
        assert_eq!(
            renamed_create(create, "orders")?,
            "CREATE TABLE `orders` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n)"
        );
        Ok(())
    }
}
