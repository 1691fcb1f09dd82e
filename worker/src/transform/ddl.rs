//! DDL from the binlog made the destination's: whether the task follows it,
//! and its text under the destination's names.
//!
//! A table several source tables merge into (shards, by a [[routes]] rule)
//! takes no DDL from any of them: one shard's ALTER would change the table
//! every shard writes to. Such DDL is skipped, with a warning and an entry
//! in the task's `ddl skipped` list; a new shard created onto an existing
//! merged table just joins it.

use crate::error::{SyncError, SyncResult};
use crate::source::catalog::{Table, TableName};
use crate::source::ddl::{DdlKind, ObjectName};
use crate::transform::names;
use dts_common::route::Route;
use std::collections::{BTreeSet, HashMap};

/// What to do with a DDL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlPlan {
    /// It names nothing the task selects.
    Ignore,
    /// It changes a table several source tables merge into.
    SkipMerged { target: TableName },
    /// Run `sql` on the destination in database `schema` (none when empty).
    Apply { schema: String, sql: String },
}

/// Which source tables go to each destination table, kept as DDL creates,
/// drops and renames them.
#[derive(Debug, Default)]
struct Merges {
    sources: HashMap<TableName, BTreeSet<TableName>>,
}

impl Merges {
    fn add(&mut self, source: TableName, target: TableName) {
        self.sources.entry(target).or_default().insert(source);
    }

    fn remove(&mut self, source: &TableName, target: &TableName) {
        if let Some(sources) = self.sources.get_mut(target) {
            sources.remove(source);
        }
    }

    /// Whether a source table other than `source` goes to `target`.
    fn shared(&self, target: &TableName, source: &TableName) -> bool {
        self.sources
            .get(target)
            .is_some_and(|sources| sources.iter().any(|s| s != source))
    }
}

pub struct DdlRouter<'a> {
    route: &'a Route,
    merges: Merges,
}

/// A table DDL names, and where the route sends it.
struct Named {
    source: TableName,
    target: Option<TableName>,
}

impl<'a> DdlRouter<'a> {
    /// `tables`: the selected source tables, as the prechecks found them.
    pub fn new(route: &'a Route, tables: &[Table]) -> Self {
        let mut merges = Merges::default();
        for table in tables {
            merges.add(table.source_name(), table.target.clone());
        }
        Self { route, merges }
    }

    fn named(&self, kind: DdlKind, object: &ObjectName, schema: &str) -> SyncResult<Named> {
        let db = object.db.as_deref().unwrap_or(schema);
        let source = TableName {
            db: db.to_string(),
            name: object.name.clone(),
        };
        let selected = self
            .route
            .table(db, &object.name)
            .map_err(SyncError::RouteConflict)?;
        // Views and routines come with a whole database only.
        let whole_only = matches!(
            kind,
            DdlKind::CreateView
                | DdlKind::AlterView
                | DdlKind::CreateFunction
                | DdlKind::CreateProcedure
        );
        let target = selected
            .filter(|_| !whole_only || self.route.whole_database(db).is_some())
            .map(|routed| TableName {
                db: routed.db,
                name: routed.table,
            });
        Ok(Named { source, target })
    }

    /// The plan for `sql`, DDL of `kind` naming `objects`, run on the source
    /// in `schema` and ending at `position`.
    pub fn plan(
        &mut self,
        kind: DdlKind,
        objects: &[ObjectName],
        schema: &str,
        sql: &str,
        position: &str,
    ) -> SyncResult<DdlPlan> {
        let named: Vec<Named> = objects
            .iter()
            .map(|o| self.named(kind, o, schema))
            .collect::<SyncResult<_>>()?;
        if named.iter().all(|n| n.target.is_none()) {
            return Ok(DdlPlan::Ignore);
        }
        let unmappable = |reason: String| SyncError::UnmappableDdl {
            statement: sql.to_string(),
            position: position.to_string(),
            reason,
        };
        if kind == DdlKind::RenameTable {
            for pair in named.chunks(2) {
                let [from, to] = pair else { continue };
                match (&from.target, &to.target) {
                    (Some(_), None) => {
                        return Err(unmappable(format!(
                            "it renames selected table {} to {}, which the task does not select \
                             (its later changes would be lost); select the new name too",
                            from.source, to.source
                        )))
                    }
                    (None, Some(_)) => {
                        return Err(unmappable(format!(
                            "it renames {}, which the task does not select and never copied, to \
                             selected name {}",
                            from.source, to.source
                        )))
                    }
                    _ => {}
                }
            }
        }
        let table_kind = matches!(
            kind,
            DdlKind::AlterTable
                | DdlKind::CreateIndex
                | DdlKind::CreateTable
                | DdlKind::DropIndex
                | DdlKind::DropTable
                | DdlKind::RenameTable
                | DdlKind::TruncateTable
        );
        if table_kind {
            let merged = named.iter().find_map(|n| {
                n.target
                    .as_ref()
                    .filter(|target| self.merges.shared(target, &n.source))
                    .cloned()
            });
            // Merged or not, the table's shard comes, goes or changes name.
            self.follow(kind, &named);
            if let Some(target) = merged {
                return Ok(DdlPlan::SkipMerged { target });
            }
        }
        Ok(DdlPlan::Apply {
            schema: self.route.database(schema).unwrap_or_default(),
            sql: names::rewrite(self.route, schema, sql, objects)?,
        })
    }

    /// Keeps the merges as tables come, go and change names.
    fn follow(&mut self, kind: DdlKind, named: &[Named]) {
        match kind {
            DdlKind::CreateTable => {
                for n in named.iter().take(1) {
                    if let Some(target) = &n.target {
                        self.merges.add(n.source.clone(), target.clone());
                    }
                }
            }
            DdlKind::DropTable => {
                for n in named {
                    if let Some(target) = &n.target {
                        self.merges.remove(&n.source, target);
                    }
                }
            }
            DdlKind::RenameTable => {
                for pair in named.chunks(2) {
                    if let [from, to] = pair {
                        if let (Some(old), Some(new)) = (&from.target, &to.target) {
                            self.merges.remove(&from.source, old);
                            self.merges.add(to.source.clone(), new.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ddl::{classify, Statement};
    use crate::transform::test_route as route;

    fn source_table(route: &Route, db: &str, name: &str) -> Table {
        let routed = route.table(db, name).ok().flatten();
        let routed = routed.unwrap_or_else(|| panic!("{db}.{name} is not selected"));
        let mut table = Table::new(db, name, Vec::new(), Vec::new(), Vec::new());
        table.target = TableName {
            db: routed.db,
            name: routed.table,
        };
        table.claim = Some(routed.claim);
        table
    }

    fn plan(router: &mut DdlRouter<'_>, schema: &str, sql: &str) -> SyncResult<DdlPlan> {
        match classify(sql) {
            Statement::Ddl { kind, objects } => {
                router.plan(kind, &objects, schema, sql, "b.000001:4")
            }
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn apply(schema: &str, sql: &str) -> DdlPlan {
        DdlPlan::Apply {
            schema: schema.into(),
            sql: sql.into(),
        }
    }

    #[test]
    fn renamed_tables_take_their_ddl_under_the_new_names() -> SyncResult<()> {
        let r = route("[[objects]]\ndatabase = \"shop\"\nto = \"eu\"\ntables = [{ name = \"o\", to = \"o2\" }, \"c\"]");
        let tables = [source_table(&r, "shop", "o"), source_table(&r, "shop", "c")];
        let mut router = DdlRouter::new(&r, &tables);
        assert_eq!(
            plan(&mut router, "shop", "ALTER TABLE o ADD x INT")?,
            apply("eu", "ALTER TABLE `o2` ADD x INT")
        );
        assert_eq!(
            plan(&mut router, "shop", "ALTER TABLE other ADD x INT")?,
            DdlPlan::Ignore
        );
        assert_eq!(
            plan(&mut router, "shop", "CREATE VIEW v AS SELECT 1")?,
            DdlPlan::Ignore
        );
        assert!(matches!(
            plan(&mut router, "shop", "RENAME TABLE o TO o_old"),
            Err(SyncError::UnmappableDdl { .. })
        ));
        assert!(matches!(
            plan(&mut router, "shop", "RENAME TABLE unselected TO c"),
            Err(SyncError::UnmappableDdl { .. })
        ));
        assert_eq!(
            plan(&mut router, "shop", "RENAME TABLE o TO c, c TO o")?,
            apply("eu", "RENAME TABLE `o2` TO c, c TO `o2`")
        );
        Ok(())
    }

    #[test]
    fn merged_tables_take_no_ddl_and_new_shards_join_them() -> SyncResult<()> {
        let r = route(
            "[[routes]]\ndatabase = \"shard_*\"\ntable = \"orders*\"\nto_database = \"merged\"\nto_table = \"orders\"\n\
             [[routes]]\ndatabase = \"shard_*\"\ntable = \"items\"\nto_database = \"merged\"",
        );
        let tables = [
            source_table(&r, "shard_1", "orders"),
            source_table(&r, "shard_2", "orders"),
            source_table(&r, "shard_1", "items"),
        ];
        let mut router = DdlRouter::new(&r, &tables);
        let merged = DdlPlan::SkipMerged {
            target: TableName {
                db: "merged".into(),
                name: "orders".into(),
            },
        };
        assert_eq!(
            plan(&mut router, "shard_1", "ALTER TABLE orders ADD x INT")?,
            merged
        );
        assert_eq!(
            plan(
                &mut router,
                "shard_3",
                "CREATE TABLE orders_new (id INT PRIMARY KEY)"
            )?,
            merged
        );
        assert_eq!(
            plan(&mut router, "shard_1", "ALTER TABLE items ADD x INT")?,
            apply("merged", "ALTER TABLE items ADD x INT")
        );
        // The last shard but one dropped: the table is no longer shared.
        plan(&mut router, "shard_2", "DROP TABLE orders")?;
        plan(&mut router, "shard_3", "DROP TABLE orders_new")?;
        assert_eq!(
            plan(&mut router, "shard_1", "ALTER TABLE orders ADD y INT")?,
            apply("merged", "ALTER TABLE orders ADD y INT")
        );
        Ok(())
    }
}
