//! The ALTERs an online schema change tool ran on a shadow table, kept
//! until its cut-over applies them to the real destination table
//! (`online_ddl = "follow_original_ddl"`, see `transform::ddl`).
//!
//! They live in the meta schema and change in the same transaction as the
//! checkpoint past the statement that changed them: a task restarted between
//! a tool's ALTER and its cut-over, on any worker, still has them, and one
//! restarted after a cut-over is applied does not apply them twice.

use crate::error::{DriverResultExt, Side, SyncResult};
use crate::meta::Meta;
use crate::source::catalog::TableName;
use crate::transform::ddl::DdlRun;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;

/// A change to what is kept, made with the checkpoint after its statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StashChange {
    /// Keep `run` as the `seq`th change to `shadow` (source names).
    Add {
        shadow: TableName,
        seq: u32,
        run: Box<DdlRun>,
    },
    /// The cut-over applied them, or the shadow table is gone (or created
    /// again, by a tool run again).
    Clear { shadow: TableName },
}

/// What is kept, per shadow table, in order.
#[derive(Debug, Default)]
pub struct Stashed {
    by_shadow: HashMap<TableName, Vec<DdlRun>>,
}

impl Stashed {
    pub async fn load(meta: &Meta, conn: &mut mysql_async::Conn) -> SyncResult<Self> {
        let rows: Vec<(String, String, String, String)> = conn
            .exec(
                format!(
                    "SELECT db, shadow, run_schema, statement FROM {} WHERE task_id = ? \
                     ORDER BY db, shadow, seq",
                    meta.table("online_ddl")
                ),
                (&meta.task_id,),
            )
            .await
            .on(Side::Destination, "reading the kept online schema changes")?;
        let mut by_shadow: HashMap<TableName, Vec<DdlRun>> = HashMap::new();
        for (db, name, schema, sql) in rows {
            by_shadow
                .entry(TableName { db, name })
                .or_default()
                .push(DdlRun {
                    schema,
                    sql,
                    proof: None,
                });
        }
        Ok(Self { by_shadow })
    }

    /// Keeps `run` for `shadow`'s cut-over.
    pub fn add(&mut self, shadow: &TableName, run: DdlRun) -> StashChange {
        let kept = self.by_shadow.entry(shadow.clone()).or_default();
        kept.push(run.clone());
        StashChange::Add {
            shadow: shadow.clone(),
            seq: u32::try_from(kept.len()).unwrap_or(u32::MAX),
            run: Box::new(run),
        }
    }

    /// What `shadow`'s cut-over applies, now forgotten.
    pub fn take(&mut self, shadow: &TableName) -> (Vec<DdlRun>, StashChange) {
        let kept = self.by_shadow.remove(shadow).unwrap_or_default();
        (
            kept,
            StashChange::Clear {
                shadow: shadow.clone(),
            },
        )
    }
}

/// Writes `change` inside the caller's transaction.
pub async fn save<Q: Queryable>(meta: &Meta, tx: &mut Q, change: &StashChange) -> SyncResult<()> {
    let ctx = "keeping an online schema change";
    match change {
        StashChange::Add { shadow, seq, run } => tx
            .exec_drop(
                format!(
                    "INSERT INTO {} (task_id, db, shadow, seq, run_schema, statement) \
                     VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
                     run_schema = VALUES(run_schema), statement = VALUES(statement)",
                    meta.table("online_ddl")
                ),
                (
                    &meta.task_id,
                    &shadow.db,
                    &shadow.name,
                    seq,
                    &run.schema,
                    &run.sql,
                ),
            )
            .await
            .on(Side::Destination, ctx),
        StashChange::Clear { shadow } => tx
            .exec_drop(
                format!(
                    "DELETE FROM {} WHERE task_id = ? AND db = ? AND shadow = ?",
                    meta.table("online_ddl")
                ),
                (&meta.task_id, &shadow.db, &shadow.name),
            )
            .await
            .on(Side::Destination, ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> DdlRun {
        DdlRun {
            schema: "eu".into(),
            sql: sql.into(),
            proof: None,
        }
    }

    #[test]
    fn kept_changes_number_in_order_and_a_cut_over_takes_them_all() {
        let shadow = TableName {
            db: "shop".into(),
            name: "_orders_gho".into(),
        };
        let mut stashed = Stashed::default();
        let first = stashed.add(&shadow, run("ALTER TABLE `orders` ADD a INT"));
        let second = stashed.add(&shadow, run("ALTER TABLE `orders` ADD b INT"));
        assert!(matches!(first, StashChange::Add { seq: 1, .. }));
        assert!(matches!(second, StashChange::Add { seq: 2, .. }));
        let (runs, clear) = stashed.take(&shadow);
        assert_eq!(
            runs.iter().map(|r| r.sql.as_str()).collect::<Vec<_>>(),
            [
                "ALTER TABLE `orders` ADD a INT",
                "ALTER TABLE `orders` ADD b INT"
            ]
        );
        assert_eq!(
            clear,
            StashChange::Clear {
                shadow: shadow.clone()
            }
        );
        assert!(stashed.take(&shadow).0.is_empty());
    }
}
