//! Each table's copy window: from the start of the full copy (P0) to where
//! the source binlog was when the table's last chunk was in.
//!
//! DDL on a table inside its window means some of its rows may have been
//! read under a definition the destination did not have (a column changed
//! type or character set, say), and replaying the DDL afterwards would not
//! fix them. The catch-up replays the binlog from P0, so it meets every such
//! statement: it fails the task with the reason instead of applying it.

use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::meta::Meta;
use crate::source::ddl::{self, DdlKind, ObjectName};
use crate::source::position::BinlogPosition;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;

/// Records where `db`.`table`'s copy ended. The first record stands: one
/// made again after a restart would only be later, and widen the window.
pub async fn record(
    meta: &Meta,
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
    end: &BinlogPosition,
) -> SyncResult<()> {
    let ctx = format!("recording where the copy of `{db}`.`{table}` ended");
    let json =
        serde_json::to_string(end).map_err(|e| SyncError::Internal(format!("{ctx}: {e}")))?;
    let mut tx = conn
        .start_transaction(Default::default())
        .await
        .on(Side::Destination, &ctx)?;
    meta.check_owner(&mut tx).await?;
    tx.exec_drop(
        format!(
            "INSERT IGNORE INTO {} (task_id, db, tbl, copy_end) VALUES (?, ?, ?, ?)",
            meta.table("table_copies")
        ),
        (&meta.task_id, db, table, json),
    )
    .await
    .on(Side::Destination, &ctx)?;
    tx.commit().await.on(Side::Destination, &ctx)
}

/// The recorded ends of the task's table copies.
#[derive(Debug, Default)]
pub struct CopyWindows {
    ends: HashMap<(String, String), BinlogPosition>,
}

impl CopyWindows {
    pub async fn load(meta: &Meta, conn: &mut mysql_async::Conn) -> SyncResult<Self> {
        let rows: Vec<(String, String, String)> = conn
            .exec(
                format!(
                    "SELECT db, tbl, copy_end FROM {} WHERE task_id = ?",
                    meta.table("table_copies")
                ),
                (&meta.task_id,),
            )
            .await
            .on(Side::Destination, "reading where the table copies ended")?;
        let mut ends = HashMap::new();
        for (db, table, json) in rows {
            let end = serde_json::from_str(&json).map_err(|e| {
                SyncError::Internal(format!(
                    "the recorded copy end of `{db}`.`{table}` does not parse: {e}"
                ))
            })?;
            ends.insert((db, table), end);
        }
        Ok(Self { ends })
    }

    /// Fails when `statement`, DDL of `kind` on `objects` (unqualified ones
    /// in `schema`) whose binlog event ends at `position`, changed a table
    /// before its copy ended.
    pub fn check(
        &self,
        kind: DdlKind,
        objects: &[ObjectName],
        schema: &str,
        position: &BinlogPosition,
        statement: &str,
    ) -> SyncResult<()> {
        if !changes_definition(kind)
            || (kind == DdlKind::AlterTable && ddl::alters_only_indexes_or_options(statement))
        {
            return Ok(());
        }
        for object in objects {
            let db = object.db.as_deref().unwrap_or(schema);
            let key = (db.to_string(), object.name.clone());
            let Some(end) = self.ends.get(&key) else {
                continue;
            };
            if position.at_or_before(end) {
                let head: String = statement.chars().take(120).collect();
                return Err(SyncError::ChangedDuringCopy {
                    db: key.0,
                    table: key.1,
                    detail: format!(
                        "`{head}` at binlog position {position}, before its copy ended at {end}"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Whether DDL of this kind can change how a table's rows read. Indexes do
/// not (nor does an ALTER TABLE of nothing but indexes and table options,
/// told apart by `ddl::alters_only_indexes_or_options`); TRUNCATE does not
/// either: replayed in its place it removes what the copy took before it,
/// and the inserts after it are replayed too.
fn changes_definition(kind: DdlKind) -> bool {
    match kind {
        DdlKind::AlterTable | DdlKind::CreateTable | DdlKind::DropTable | DdlKind::RenameTable => {
            true
        }
        DdlKind::AlterView
        | DdlKind::CreateFunction
        | DdlKind::CreateIndex
        | DdlKind::CreateProcedure
        | DdlKind::CreateTrigger
        | DdlKind::CreateView
        | DdlKind::DropFunction
        | DdlKind::DropIndex
        | DdlKind::DropProcedure
        | DdlKind::DropTrigger
        | DdlKind::DropView
        | DdlKind::TruncateTable => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pos: u64) -> BinlogPosition {
        BinlogPosition {
            file: "binlog.000001".into(),
            pos,
            gtid: None,
        }
    }

    fn named(db: Option<&str>, name: &str) -> ObjectName {
        ObjectName {
            db: db.map(str::to_string),
            name: name.to_string(),
            span: 0..0,
        }
    }

    fn windows() -> CopyWindows {
        CopyWindows {
            ends: HashMap::from([(("app".to_string(), "t".to_string()), at(1_000))]),
        }
    }

    #[test]
    fn an_alter_before_the_copy_ended_fails_and_names_the_table() {
        let failed = windows().check(
            DdlKind::AlterTable,
            &[named(None, "t")],
            "app",
            &at(900),
            "ALTER TABLE t MODIFY v TEXT",
        );
        let Err(SyncError::ChangedDuringCopy { db, table, detail }) = failed else {
            panic!("expected ChangedDuringCopy, got {failed:?}");
        };
        assert_eq!((db.as_str(), table.as_str()), ("app", "t"));
        assert!(detail.contains("binlog.000001:900"), "{detail}");
        assert!(detail.contains("binlog.000001:1000"), "{detail}");
    }

    #[test]
    fn only_definition_ddl_on_a_copied_table_before_its_copy_ended_fails() {
        use DdlKind::*;
        let windows = windows();
        // (kind, tables named, default schema, event end, fails)
        let cases = [
            // The event that ends exactly at the recorded end was logged before it.
            (AlterTable, vec![named(Some("app"), "t")], "", 1_000, true),
            (AlterTable, vec![named(Some("app"), "t")], "", 1_001, false),
            (AlterTable, vec![named(None, "t")], "other", 900, false),
            (AlterTable, vec![named(Some("app"), "u")], "app", 900, false),
            (CreateIndex, vec![named(None, "t")], "app", 900, false),
            (TruncateTable, vec![named(None, "t")], "app", 900, false),
            // RENAME names the table it moves away from, too.
            (
                RenameTable,
                vec![named(None, "t"), named(None, "t_old")],
                "app",
                900,
                true,
            ),
        ];
        for (kind, objects, schema, end, fails) in cases {
            let checked = windows.check(kind, &objects, schema, &at(end), "");
            assert_eq!(
                checked.is_err(),
                fails,
                "{kind:?} {objects:?} in {schema:?} ending at {end}"
            );
        }
        // An ALTER of indexes alone passes by its text.
        let index_only = windows.check(
            AlterTable,
            &[named(None, "t")],
            "app",
            &at(900),
            "ALTER TABLE t ADD INDEX by_a (a)",
        );
        assert!(index_only.is_ok(), "{index_only:?}");
    }
}
